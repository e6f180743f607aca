"""The dashboard in a real browser (Playwright on Debian's chromium): its KPIs equal SQL over
the marts, its charts render, the state filter changes them, and a new batch shows without a
reload. Marts: real Olist orders built by dbt into a sandbox (tests/browser/marts.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from psycopg import sql

from olist_dashboard import figures
from olist_dev.dashboard import DashboardServer
from olist_dev.e2e import free_port
from tests.browser.conftest import screenshot
from tests.browser.marts import DashboardMarts, dashboard_marts, events_of, first_orders
from tests.conftest import OLIST_DATA_DIR

FIRST_BATCH, SECOND_BATCH = 2000, 300
# The bound: new figures within 10 s of a materialization, with no click.
REFRESH_BOUND_S = 10
CHARTS = 9


@pytest.fixture(scope="module")
def orders():
    if not (OLIST_DATA_DIR / "olist_orders_dataset.csv.gz").exists():
        pytest.fail(f"Olist data not found at {OLIST_DATA_DIR} (set OLIST_DATA_DIR)")
    return first_orders(OLIST_DATA_DIR, FIRST_BATCH + SECOND_BATCH)


@pytest.fixture(scope="module")
def marts(settings, tmp_path_factory, orders) -> Iterator[DashboardMarts]:
    with dashboard_marts(settings, tmp_path_factory.mktemp("dashboard")) as m:
        m.build(events_of(orders[:FIRST_BATCH]))
        yield m


@pytest.fixture(scope="module")
def server(marts, tmp_path_factory) -> Iterator[DashboardServer]:
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with DashboardServer(marts.env(), free_port(), log) as srv:
        yield srv


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server.url)
    page.get_by_text("Total orders").first.wait_for(timeout=30_000)
    yield page
    page.close()


def expected_kpis(marts: DashboardMarts, state: str | None = None) -> dict[str, str]:
    """The KPI cards computed from fact_orders directly (not from agg_daily_revenue, which the
    dashboard reads), formatted as the page formats them."""
    where = sql.SQL("customer_state = %s" if state else "true")
    latest = sql.SQL("state = %s" if state else "true")
    row = marts.sandbox.rows(
        sql.SQL("""
            with per_customer as (
                -- Every customer's orders, kept when their latest order is in the filter
                -- (the dashboard's repeat share counts dim_customers by its latest order).
                select customer_unique_id, count(*) as n,
                       (array_agg(customer_state order by purchased_at desc, order_id desc))[1]
                           as state
                from {fact} group by 1
            ),
            in_filter as (
                select * from per_customer where {latest}
            )
            select (select count(*) from {fact} where {where}) as orders,
                   (select sum(total_price) filter (where order_status not in
                        ('canceled', 'unavailable')) from {fact} where {where}) as revenue,
                   (select sum(total_freight) filter (where order_status not in
                        ('canceled', 'unavailable')) from {fact} where {where}) as freight,
                   (select count(*) filter (where order_status not in ('canceled', 'unavailable'))
                        from {fact} where {where}) as revenue_orders,
                   (select count(distinct customer_unique_id) from {fact} where {where})
                       as customers,
                   (select count(*) from in_filter) as latest_in_filter,
                   (select count(*) from in_filter where n > 1) as repeat
        """).format(
            fact=sql.Identifier(marts.reader.analytics_schema, "fact_orders"),
            where=where,
            latest=latest,
        ),
        [state] * 6 if state else None,
    )[0]
    return {
        "Total orders": figures.count(row["orders"]),
        "Revenue": figures.brl(row["revenue"]),
        "Average order value": figures.brl(round(row["revenue"] / row["revenue_orders"], 2)),
        "Customers": figures.count(row["customers"]),
        "Freight / revenue": figures.percent(row["freight"], row["revenue"]),
        "Repeat customers": figures.percent(row["repeat"], row["latest_in_filter"]),
    }


def shown_metrics(page) -> dict[str, str]:
    metrics = page.locator('[data-testid="stMetric"]')
    return {
        metric.locator('[data-testid="stMetricLabel"]').inner_text().strip(): metric.locator(
            '[data-testid="stMetricValue"]'
        )
        .inner_text()
        .strip()
        for metric in metrics.all()
    }


def wait_for_kpis(
    page, expected: dict[str, str], timeout: float, since: float | None = None
) -> float:
    """Seconds from ``since`` (monotonic; default now) until the page's KPI cards show
    ``expected``; fails with what it shows after ``timeout``."""
    started = time.monotonic() if since is None else since
    shown: dict[str, str] = {}
    while time.monotonic() - started < timeout:
        shown = shown_metrics(page)
        if {k: shown.get(k) for k in expected} == expected:
            return time.monotonic() - started
        page.wait_for_timeout(200)
    pytest.fail(f"after {timeout}s the page shows {shown}, expected {expected}")


def test_kpis_equal_sql_over_the_marts(page, marts):
    expected = expected_kpis(marts)
    assert expected["Total orders"] == f"{FIRST_BATCH:,}"
    wait_for_kpis(page, expected, 20)


def test_charts_render(page):
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    charts.nth(CHARTS - 1).wait_for(timeout=30_000)
    assert charts.count() == CHARTS
    for chart in charts.all():
        chart.scroll_into_view_if_needed()
        # Vega draws into a canvas (or svg) once it has data and a size.
        drawn = chart.locator("canvas, svg").first
        drawn.wait_for(timeout=15_000)
        box = drawn.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100, chart.inner_text()[:200]
    rows = page.locator('[data-testid="stDataFrame"]')
    rows.wait_for()
    # Streamlit scrolls its own container, so a full-page shot is the viewport: a taller one from
    # the title down (KPIs, daily revenue, the state charts) is the picture in the README.
    page.set_viewport_size({"width": 1400, "height": 1500})
    page.get_by_text("Olist live analytics").first.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # charts re-laid out to the new size
    screenshot(page, "dashboard.png")


def test_state_filter_changes_the_figures(page, marts):
    everywhere, sp = expected_kpis(marts), expected_kpis(marts, "SP")
    assert sp["Total orders"] != everywhere["Total orders"]
    wait_for_kpis(page, everywhere, 20)
    top_states = page.locator('[data-testid="stVegaLiteChart"]').nth(1)
    top_states.wait_for()
    page.locator('[data-testid="stMultiSelect"] input').fill("SP")
    page.keyboard.press("Enter")
    wait_for_kpis(page, sp, 20)
    screenshot(page, "dashboard_sp.png")


def test_new_batch_shows_without_a_reload(page, marts, orders, record_property):
    wait_for_kpis(page, expected_kpis(marts), 20)
    marts.build(events_of(orders[FIRST_BATCH:]))
    built = time.monotonic()
    expected = expected_kpis(marts)
    assert expected["Total orders"] == f"{FIRST_BATCH + SECOND_BATCH:,}"
    seconds = wait_for_kpis(page, expected, 30, since=built)
    record_property("seconds_to_screen", round(seconds, 2))
    print(f"\nnew batch on screen {seconds:.1f}s after the build finished")
    assert seconds < REFRESH_BOUND_S
