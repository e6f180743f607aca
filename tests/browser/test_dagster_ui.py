"""The Dagster UI in a real browser (Playwright on Debian's chromium), served by the real
webserver + daemon over an isolated instance and warehouse (olist_dev/e2e.py), once the lag
sensor's run has materialized the graph with its checks: the global lineage shows the graph from
the Kafka topic to the dashboard, and raw_orders' Checks tab shows its checks passed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from olist_dev.e2e import E2EPipeline
from tests.browser.conftest import SCREENSHOTS, screenshot

# From the topic through ingestion and the dbt models to where users look.
LINEAGE = ["olist_orders_topic", "raw_orders", "stg_orders", "int_orders_latest",
           "fact_orders", "dim_customers", "agg_daily_revenue", "dashboard"]  # fmt: skip
CHECKED = ["raw_orders", "stg_orders", "fact_orders", "dim_customers", "agg_daily_revenue"]
RAW_ORDERS_CHECKS = {"offsets_reconcile", "no_new_dead_letters"}
ORDERS = 30
UI_TIMEOUT_MS = 60_000  # a loaded machine: the first GraphQL answers of a fresh instance are slow


@pytest.fixture(scope="module")
def e2e(settings, tmp_path_factory) -> Iterator[E2EPipeline]:
    """One pipeline run by the daemon (sensor → ingestion → dbt build with checks), settled."""
    with E2EPipeline(settings, tmp_path_factory.mktemp("dagster_ui")) as pipeline:
        pipeline.produce(ORDERS, seed=1301)
        pipeline.wait_for_marts(timeout=600)
        pipeline.wait_for_checks(CHECKED, timeout=600)
        pipeline.wait_for_idle(timeout=600)
        yield pipeline


@pytest.fixture(scope="module")
def ui(browser, e2e):
    """A browser page on the webserver, past the first-visit community dialog (the instance is
    new, so the dialog shows; dismissed once, the instance remembers it)."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{e2e.server.url}/asset-groups")
    page.get_by_text("Join the Dagster community").wait_for()
    page.get_by_role("button", name="Skip").click()
    page.get_by_text("Join the Dagster community").wait_for(state="hidden")
    yield page
    page.close()


def test_lineage_shows_the_graph_from_the_topic_to_the_dashboard(ui, e2e):
    ui.goto(f"{e2e.server.url}/asset-groups")
    ui.get_by_text("Global asset lineage").first.wait_for()
    # The global graph opens with each group collapsed to one box; ⌥E expands them all.
    ui.get_by_text("ingestion", exact=True).last.wait_for()
    ui.keyboard.press("Alt+e")
    for name in LINEAGE:
        ui.get_by_text(name, exact=True).first.wait_for(state="visible")
    ui.wait_for_timeout(1000)  # the zoom-to-fit animation after the groups open
    screenshot_graph(ui, "lineage.png")


def screenshot_graph(page, name: str) -> None:
    """The graph pane alone (no navigation, no toolbar): right of the asset filter's left edge,
    below the "Materialize all" button."""
    search = page.get_by_text("Search and filter assets").first.bounding_box()
    button = page.get_by_text("Materialize all").first.bounding_box()
    size = page.viewport_size
    left, top = search["x"] - 40, button["y"] + button["height"] + 24  # under its border
    clip = {"x": left, "y": top, "width": size["width"] - left, "height": size["height"] - top}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), clip=clip)


def test_raw_orders_checks_tab_shows_its_checks_passed(ui, e2e):
    statuses = e2e.latest_check_statuses("raw_orders")
    assert statuses == dict.fromkeys(RAW_ORDERS_CHECKS, "SUCCEEDED"), statuses
    ui.goto(f"{e2e.server.url}/assets/raw_orders?view=checks")
    ui.get_by_text(f"Checks ({len(RAW_ORDERS_CHECKS)})").wait_for()
    for name in sorted(RAW_ORDERS_CHECKS):
        # Each check of the list: its name, and beside it its latest execution's status.
        status = ui.locator(f'[title="{name}"] + span')
        status.wait_for()
        assert status.inner_text().strip().lower() == "succeeded", name
    # The selected check's latest evaluation.
    ui.get_by_text("Passed", exact=True).first.wait_for(state="visible")
    screenshot(ui, "asset_checks.png", full_page=False)
