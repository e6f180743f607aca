"""Every query the dashboard runs, over the marts' schema only (the read-only role can read
nothing else). Tables are `psycopg.sql.Identifier`s, filters are parameters.

Each query is a function of a connection, the analytics schema and the filters, returning rows:
the app caches them, `olist bench dashboard` times them, the tests compare them with SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from kafka_io.settings import Settings

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Filters:
    """The dashboard's filters: a purchase-date range (inclusive) and states (none = all)."""

    start: date | None = None
    end: date | None = None
    states: tuple[str, ...] = ()


DateRange = tuple[date | None, date | None]


def date_range(picked: Any, bounds: DateRange) -> DateRange:
    """The (start, end) filter of a date-range widget's value (a date, or a tuple of none, one
    or two while the user picks); the whole range ``bounds`` is no filter (None, None), so it
    keeps up with new days."""
    if not isinstance(picked, tuple):
        picked = (picked,)
    start, end = (picked + (None, None))[:2]
    if (start, end) == tuple(bounds):
        return None, None
    return start, end


def follow_bounds(current: Any, old_bounds: DateRange | None, bounds: DateRange) -> Any:
    """The date widget's value once the data spans ``bounds``: the whole range when the user
    had not narrowed the old one (or never picked), else what they picked."""
    if current is None or old_bounds is None or tuple(current) == tuple(old_bounds):
        return tuple(bounds)
    return current


ORDER_DATE = sql.Identifier("order_date")
CUSTOMER_STATE = sql.Identifier("customer_state")


def filter_clause(
    filters: Filters,
    day: sql.Composable = ORDER_DATE,
    state: sql.Composable = CUSTOMER_STATE,
) -> tuple[sql.Composable, list[Any]]:
    """A WHERE condition for ``filters`` on the ``day`` and ``state`` expressions, and its
    parameters."""
    parts: list[sql.Composable] = []
    params: list[Any] = []
    if filters.start is not None:
        parts.append(sql.SQL("{} >= %s").format(day))
        params.append(filters.start)
    if filters.end is not None:
        parts.append(sql.SQL("{} <= %s").format(day))
        params.append(filters.end)
    if filters.states:
        parts.append(sql.SQL("{} = any(%s)").format(state))
        params.append(list(filters.states))
    return (sql.SQL(" and ").join(parts) if parts else sql.SQL("true")), params


def _rows(conn: psycopg.Connection, template: str, schema: str, filters: Filters | None,
          **columns: sql.Composable) -> Rows:  # fmt: skip
    """Run ``template`` with {agg}, {fact}, {dim}, {freshness}, {per_minute} as the schema's
    tables and {where} as the filter condition (on ``columns``: filter_clause's day/state)."""
    where, params = filter_clause(filters or Filters(), **columns)
    query = sql.SQL(template).format(
        agg=sql.Identifier(schema, "agg_daily_revenue"),
        fact=sql.Identifier(schema, "fact_orders"),
        dim=sql.Identifier(schema, "dim_customers"),
        freshness=sql.Identifier(schema, "marts_freshness"),
        per_minute=sql.Identifier(schema, "ingest_per_minute"),
        where=where,
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def kpis(conn, schema: str, filters: Filters) -> Rows:
    """Orders, revenue, revenue orders, average order value and freight (one row)."""
    return _rows(conn, """
        select coalesce(sum(order_count), 0)::bigint as orders,
               coalesce(sum(revenue_order_count), 0)::bigint as revenue_orders,
               coalesce(sum(total_revenue), 0) as revenue,
               coalesce(sum(total_freight), 0) as freight,
               round(sum(total_revenue) / nullif(sum(revenue_order_count), 0), 2)
                   as avg_order_value
        from {agg} where {where}""", schema, filters)  # fmt: skip


def customers(conn, schema: str, filters: Filters) -> Rows:
    """Distinct customers (customer_unique_id) with an order in the filters (one row).
    Unfiltered, dim_customers' row count is the same number, without the distinct."""
    if filters == Filters():
        return _rows(conn, "select count(*)::bigint as customers from {dim}", schema, None)
    return _rows(conn, """
        select count(distinct customer_unique_id)::bigint as customers
        from {fact} where {where}""", schema, filters)  # fmt: skip


def daily_revenue(conn, schema: str, filters: Filters) -> Rows:
    """Revenue and orders per purchase day."""
    return _rows(conn, """
        select order_date, sum(total_revenue) as revenue, sum(order_count)::bigint as orders
        from {agg} where {where} group by order_date order by order_date""", schema, filters)  # fmt: skip


def by_state(conn, schema: str, filters: Filters) -> Rows:
    """Per state: orders, revenue orders, revenue, freight, average order value."""
    return _rows(conn, """
        select customer_state as state,
               sum(order_count)::bigint as orders,
               sum(revenue_order_count)::bigint as revenue_orders,
               sum(total_revenue) as revenue,
               sum(total_freight) as freight,
               round(sum(total_revenue) / nullif(sum(revenue_order_count), 0), 2)
                   as avg_order_value
        from {agg} where {where}
        group by customer_state order by revenue desc nulls last""", schema, filters)  # fmt: skip


def delivery_by_state(conn, schema: str, filters: Filters) -> Rows:
    """Per state, over delivered orders: how many, the share late, average delivery days."""
    return _rows(conn, """
        select customer_state as state,
               count(*)::bigint as delivered,
               round(avg(is_late::int), 4) as late_rate,
               round(avg(delivery_days), 2) as avg_delivery_days
        from {fact} where delivered_customer_at is not null and {where}
        group by customer_state order by late_rate desc""", schema, filters)  # fmt: skip


def recent_orders(conn, schema: str, filters: Filters, limit: int = 20) -> Rows:
    """The most recently purchased orders."""
    where, params = filter_clause(filters)
    query = sql.SQL(
        "select order_id, purchased_at, customer_state as state, customer_city as city, "
        "order_status as status, item_count as items, order_value "
        "from {fact} where {where} order by purchased_at desc, order_id limit %s"
    ).format(fact=sql.Identifier(schema, "fact_orders"), where=where)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, [*params, limit]).fetchall()


def repeat_customers(conn, schema: str, filters: Filters) -> Rows:
    """Customers by number of orders (1, 2, 3, 4+), by their latest order's day and state."""
    return _rows(conn, """
        select least(total_orders, 4)::int as orders_bucket, count(*)::bigint as customers
        from {dim} where {where} group by 1 order by 1""",
        schema, filters, day=sql.SQL("last_order_at::date"), state=sql.Identifier("state"))  # fmt: skip


def freshness(conn, schema: str, filters: Filters | None = None) -> Rows:
    """Newest event (ingested and event time), last mart build, its build number, now (one
    row). Also the dashboard's "marts changed?" poll: marts_build_seq / marts_built_at move with
    every build."""
    return _rows(conn, """
        select newest_ingested_at, newest_event_time, marts_built_at, marts_build_seq,
               now() as checked_at
        from {freshness}""", schema, None)  # fmt: skip


def per_minute(conn, schema: str, filters: Filters | None = None) -> Rows:
    """Events and new orders ingested per minute, last hour."""
    return _rows(conn, """
        select ingested_minute, events, new_orders, capped from {per_minute}
        order by ingested_minute""", schema, None)  # fmt: skip


def filter_options(conn, schema: str, filters: Filters | None = None) -> Rows:
    """The first and last purchase day and the states, for the filter widgets (one row)."""
    return _rows(conn, """
        select min(order_date) as first_day, max(order_date) as last_day,
               array_agg(distinct customer_state order by customer_state) as states
        from {agg}""", schema, None)  # fmt: skip


# What the dashboard runs on every (re)load, by name: what `olist bench dashboard` times.
QUERIES: dict[str, Callable[..., Rows]] = {
    "kpis": kpis,
    "customers": customers,
    "daily_revenue": daily_revenue,
    "by_state": by_state,
    "delivery_by_state": delivery_by_state,
    "recent_orders": recent_orders,
    "repeat_customers": repeat_customers,
    "freshness": freshness,
    "per_minute": per_minute,
    "filter_options": filter_options,
}


def connect(settings: Settings) -> psycopg.Connection:
    """A read-only session of the read-only role (belt and braces: the role may only SELECT)."""
    conn = psycopg.connect(settings.reader_pg_dsn, autocommit=True)
    conn.execute("set default_transaction_read_only = on")
    return conn
