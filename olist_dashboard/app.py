"""The live dashboard over the marts: `streamlit run olist_dashboard/app.py` (`make dashboard`).

It reads the analytics schema with the read-only role (OLIST_READER_*). A fragment polls the
marts' build number every POLL_SECONDS; when a build brings new data the whole page reruns, and
every query is cached (st.cache_data) on that number and the filters, so a rerun without a new
build reads nothing from PostgreSQL and a new build shows within seconds, with no click.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import psycopg
import streamlit as st

from kafka_io.settings import get_settings
from olist_dashboard import figures, queries

POLL_SECONDS = 2
# Upper bound on how long a cached result lives even if the build number did not move.
CACHE_SECONDS = 60

Version = tuple[Any, ...] | None


def schema() -> str:
    return get_settings().analytics_schema


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def load(name: str, version: Version, filters: queries.Filters) -> list[dict[str, Any]]:
    """The rows of query ``name``; ``version`` is only part of the cache key."""
    with queries.connect(get_settings()) as conn:
        return queries.QUERIES[name](conn, schema(), filters)


def poll() -> dict[str, Any] | None:
    """The freshness row (uncached): None while the marts are not built."""
    try:
        with queries.connect(get_settings()) as conn:
            return queries.freshness(conn, schema())[0]
    except psycopg.errors.UndefinedTable:
        return None


def version_of(fresh: dict[str, Any] | None) -> Version:
    return None if fresh is None else (fresh["marts_build_seq"], fresh["marts_built_at"])


@st.fragment(run_every=POLL_SECONDS)
def freshness_panel(shown: Version) -> None:
    """Data freshness, ticking every poll; reruns the page when the marts changed."""
    fresh = poll()
    if version_of(fresh) != shown:
        st.rerun()
    if fresh is None:
        st.info("The marts are not built yet: run `make demo` (or start the pipeline).")
        return
    now = fresh["checked_at"]
    newest, event_time = fresh["newest_ingested_at"], fresh["newest_event_time"]
    cols = st.columns(3)
    cols[0].metric("Newest event ingested", figures.age(newest, now) + " ago")
    cols[1].metric(
        "Newest event time",
        event_time.strftime("%Y-%m-%d %H:%M") if event_time else "—",
        help="The event's own time (Olist's wall clock): old when history is replayed.",
    )
    cols[2].metric("Last mart build", figures.age(fresh["marts_built_at"], now) + " ago")


def sidebar_filters(version: Version) -> queries.Filters:
    options = load("filter_options", version, queries.Filters())[0]
    bounds = (options["first_day"], options["last_day"])
    st.sidebar.header("Filters")
    # The range follows new data while the user has not narrowed it: a build that adds a day
    # must show it (the widget keeps its value across reruns, so it is set through its key).
    st.session_state["dates"] = queries.follow_bounds(
        st.session_state.get("dates"), st.session_state.get("date_bounds"), bounds
    )
    st.session_state["date_bounds"] = bounds
    picked = st.sidebar.date_input(
        "Purchase dates", min_value=bounds[0], max_value=bounds[1], key="dates"
    )
    states = st.sidebar.multiselect("States", options["states"] or [], key="states")
    return queries.Filters(*queries.date_range(picked, bounds), states=tuple(states))


def bar(df: pd.DataFrame, x: str, y: str, title: str, fmt: str = ",.0f") -> alt.Chart:
    return (
        alt.Chart(df, title=title)
        .mark_bar()
        .encode(
            x=alt.X(x, sort="-y", title=None),
            y=alt.Y(y, title=None, axis=alt.Axis(format=fmt)),
            tooltip=[x, alt.Tooltip(y, format=fmt)],
        )
    )


def kpi_row(version: Version, filters: queries.Filters) -> None:
    kpis = load("kpis", version, filters)[0]
    customers = load("customers", version, filters)[0]["customers"]
    buckets = load("repeat_customers", version, filters)
    cards = list(figures.kpi_cards(kpis, customers, buckets).items())
    # Two rows of three: money in BRL needs the width.
    for row in (cards[:3], cards[3:]):
        for col, (label, value) in zip(st.columns(len(row)), row, strict=True):
            col.metric(label, value)


def charts(version: Version, filters: queries.Filters) -> None:
    daily = figures.frame(load("daily_revenue", version, filters))
    if len(daily):
        daily["order_date"] = pd.to_datetime(daily["order_date"])
        st.altair_chart(
            alt.Chart(daily, title="Daily revenue (BRL)")
            .mark_line()
            .encode(x=alt.X("order_date", title=None), y=alt.Y("revenue", title=None),
                    tooltip=["order_date", alt.Tooltip("revenue", format=",.2f"), "orders"]),
            width="stretch",
        )  # fmt: skip
    states = figures.frame(load("by_state", version, filters))
    delivery = figures.frame(load("delivery_by_state", version, filters))
    if len(states):
        left, right = st.columns(2)
        left.altair_chart(
            bar(states.head(10), "state", "revenue", "Top 10 states by revenue (BRL)", ",.2f"),
            width="stretch",
        )
        right.altair_chart(bar(states, "state", "orders", "Orders by state"), width="stretch")
        left, right = st.columns(2)
        left.altair_chart(
            bar(states, "state", "avg_order_value", "Average order value by state (BRL)", ",.2f"),
            width="stretch",
        )
        states["freight_share"] = states["freight"] / states["revenue"].where(states["revenue"] > 0)
        right.altair_chart(
            bar(states, "state", "freight_share", "Freight as a share of revenue", ".1%"),
            width="stretch",
        )
    if len(delivery):
        left, right = st.columns(2)
        left.altair_chart(
            bar(delivery, "state", "late_rate", "Late-delivery rate by state", ".1%"),
            width="stretch",
        )
        right.altair_chart(
            bar(delivery, "state", "avg_delivery_days", "Average delivery days by state", ".1f"),
            width="stretch",
        )


def stream_and_customers(version: Version, filters: queries.Filters) -> None:
    left, right = st.columns(2)
    minutes = figures.frame(load("per_minute", version, filters))
    if len(minutes):
        long = minutes.melt("ingested_minute", ["events", "new_orders"], "series", "count")
        left.altair_chart(
            alt.Chart(long, title="Events and new orders ingested per minute (last hour)")
            .mark_line(point=True)
            .encode(x=alt.X("ingested_minute", title=None), y=alt.Y("count", title=None),
                    color="series"),
            width="stretch",
        )  # fmt: skip
    else:
        left.caption("No event ingested in the last hour.")
    buckets = figures.frame(load("repeat_customers", version, filters))
    if len(buckets):
        buckets["orders"] = buckets["orders_bucket"].map(lambda n: "4+" if n >= 4 else str(n))
        right.altair_chart(
            bar(buckets, "orders", "customers", "Customers by number of orders (dim_customers)"),
            width="stretch",
        )


def recent_orders(version: Version, filters: queries.Filters) -> None:
    st.subheader("Most recent orders")
    st.dataframe(
        figures.frame(load("recent_orders", version, filters)),
        hide_index=True,
        width="stretch",
    )


def main() -> None:
    st.set_page_config(page_title="Olist live analytics", layout="wide")
    st.title("Olist live analytics")
    fresh = poll()
    version = version_of(fresh)
    freshness_panel(version)
    if fresh is None:
        return
    filters = sidebar_filters(version)
    st.caption(
        f"Marts in `{schema()}`, read as `{get_settings().reader_user}` (read-only); "
        f"refreshes itself within {POLL_SECONDS}s of a build."
    )
    kpi_row(version, filters)
    charts(version, filters)
    stream_and_customers(version, filters)
    recent_orders(version, filters)


main()
