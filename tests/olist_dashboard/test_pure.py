"""Unit tests of the dashboard's pure parts: filters, figure formatting, and the revenue-by-day
picture of agg_daily_revenue's metadata (olist_assets/lib/charts.py)."""

from __future__ import annotations

import base64
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from olist_assets.lib import charts
from olist_dashboard import figures, queries

JAN, MAR = date(2018, 1, 1), date(2018, 3, 31)
BOUNDS = (date(2016, 9, 4), date(2018, 10, 17))


def as_text(composable) -> str:
    return composable.as_string(None)


def test_filter_clause_no_filter_is_true():
    where, params = queries.filter_clause(queries.Filters())
    assert as_text(where) == "true"
    assert params == []


def test_filter_clause_dates_and_states_are_parameters():
    where, params = queries.filter_clause(queries.Filters(JAN, MAR, ("SP", "RJ")))
    assert (
        as_text(where) == '"order_date" >= %s and "order_date" <= %s and "customer_state" = any(%s)'
    )
    assert params == [JAN, MAR, ["SP", "RJ"]]


def test_filter_clause_on_other_columns():
    where, params = queries.filter_clause(
        queries.Filters(end=MAR, states=("SP",)),
        day=queries.sql.SQL("last_order_at::date"),
        state=queries.sql.Identifier("state"),
    )
    assert as_text(where) == 'last_order_at::date <= %s and "state" = any(%s)'
    assert params == [MAR, ["SP"]]


@pytest.mark.parametrize(
    ("picked", "expected"),
    [
        (BOUNDS, (None, None)),  # the whole range: no filter, so new days show
        ((JAN, MAR), (JAN, MAR)),
        ((JAN,), (JAN, None)),  # mid-pick: one end chosen
        ((), (None, None)),
        (JAN, (JAN, None)),
    ],
)
def test_date_range(picked, expected):
    assert queries.date_range(picked, BOUNDS) == expected


def test_follow_bounds_widens_an_untouched_range_and_keeps_a_narrowed_one():
    wider = (BOUNDS[0], BOUNDS[1] + timedelta(days=1))
    assert queries.follow_bounds(None, None, BOUNDS) == BOUNDS
    assert queries.follow_bounds(BOUNDS, BOUNDS, wider) == wider
    assert queries.follow_bounds((JAN, MAR), BOUNDS, wider) == (JAN, MAR)


def test_every_query_is_listed_for_the_bench():
    assert set(queries.QUERIES) == {
        "kpis", "customers", "daily_revenue", "by_state", "delivery_by_state",
        "recent_orders", "repeat_customers", "freshness", "per_minute", "filter_options",
    }  # fmt: skip


def test_formats():
    assert figures.count(1234567) == "1,234,567"
    assert figures.count(None) == "0"
    assert figures.brl(Decimal("13591643.70")) == "R$ 13,591,643.70"
    assert figures.brl(None) == "R$ 0.00"
    assert figures.percent(Decimal("1"), Decimal("8")) == "12.5%"
    assert figures.percent(5, 0) == "—"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (12, "12s"), (303, "5m 3s"), (7800, "2h 10m"), (3 * 86400 + 4 * 3600, "3d 4h")],
)
def test_age(seconds, text):
    now = datetime(2026, 12, 2, 9, 0)
    assert figures.age(now - timedelta(seconds=seconds), now) == text


def test_age_of_nothing_and_of_the_future():
    now = datetime(2026, 12, 2, 9, 0)
    assert figures.age(None, now) == "never"
    assert figures.age(now + timedelta(seconds=5), now) == "0s"  # clock skew, not "-5s"


def test_kpi_cards():
    kpis = {
        "orders": 99441,
        "revenue": Decimal("13591643.70"),
        "avg_order_value": Decimal("137.75"),
        "freight": Decimal("2251909.54"),
    }
    buckets = [
        {"orders_bucket": 1, "customers": 90},
        {"orders_bucket": 2, "customers": 7},
        {"orders_bucket": 4, "customers": 3},
    ]
    assert figures.kpi_cards(kpis, 96096, buckets) == {
        "Total orders": "99,441",
        "Revenue": "R$ 13,591,643.70",
        "Average order value": "R$ 137.75",
        "Customers": "96,096",
        "Freight / revenue": "16.6%",
        "Repeat customers": "10.0%",
    }


def test_repeat_share_of_no_customers():
    assert figures.repeat_share([]) == "—"


def test_frame_turns_decimals_into_floats():
    df = figures.frame([{"state": "SP", "revenue": Decimal("1.50"), "orders": 2}])
    assert df["revenue"].dtype == float
    assert df["revenue"].tolist() == [1.5]
    assert df["orders"].tolist() == [2]
    assert figures.frame([]).empty


def points(svg: str) -> list[tuple[float, float]]:
    raw = re.search(r'points="([^"]*)"', svg).group(1)
    return [tuple(map(float, p.split(","))) for p in raw.split()]


def test_sparkline_fills_the_box_left_to_right_high_values_up():
    svg = charts.sparkline_svg([1, 3, 2], width=100, height=50, pad=5)
    assert points(svg) == [(5.0, 45.0), (50.0, 5.0), (95.0, 25.0)]


def test_sparkline_flat_single_and_empty():
    assert {y for _, y in points(charts.sparkline_svg([4, 4, 4], height=50, pad=5))} == {45.0}
    assert points(charts.sparkline_svg([7], pad=3)) == [(3.0, 45.0)]
    assert 'points=""' in charts.sparkline_svg([])


def test_markdown_image_is_a_data_uri_of_the_svg():
    svg = charts.sparkline_svg([1, 2])
    image = charts.markdown_image("revenue <by> day", svg)
    alt, uri = re.fullmatch(r"!\[(.*)\]\((.*)\)", image).groups()
    assert alt == "revenue &lt;by&gt; day"
    assert uri.startswith("data:image/svg+xml;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]).decode() == svg
