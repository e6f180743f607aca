"""Reads of the marts for metadata and summaries, with the dbt role's (read) rights."""

import psycopg
from psycopg import sql

from kafka_io.settings import Settings


def top_states(settings: Settings, limit: int = 5) -> list[tuple]:
    """(state, revenue orders, revenue, average order) for the states with the most revenue."""
    query = sql.SQL(
        "select customer_state, sum(revenue_order_count)::bigint, sum(total_revenue), "
        "sum(total_revenue) / nullif(sum(revenue_order_count), 0) "
        "from {} group by 1 order by 3 desc nulls last limit %s"
    ).format(sql.Identifier(settings.analytics_schema, "agg_daily_revenue"))
    with psycopg.connect(settings.dbt_pg_dsn) as conn:
        return conn.execute(query, [limit]).fetchall()


def revenue_summary(settings: Settings, days: int = 120) -> dict:
    """What agg_daily_revenue's materialization reports, in one connection:

    - ``batch``: the cells (day, state) the build rewrote — from the model's change-set table,
      joined through the unique key, so it costs in proportion to the batch — with their orders
      and revenue (an empty change set after a full build: every cell was rewritten);
    - ``totals``: orders and revenue over the whole mart (one row per day and state: small);
    - ``daily``: revenue per day of the last ``days`` days with data (for a sparkline).
    """
    agg = sql.Identifier(settings.analytics_schema, "agg_daily_revenue")
    change_set = sql.Identifier(settings.schema_prefix + "staging", "agg_daily_revenue__change_set")
    batch_sql = sql.SQL(
        "select count(*)::bigint, coalesce(sum(agg.order_count), 0)::bigint, "
        "coalesce(sum(agg.total_revenue), 0) from {cs} as cs join {agg} as agg "
        "using (order_date, customer_state)"
    ).format(cs=change_set, agg=agg)
    totals_sql = sql.SQL(
        "select coalesce(sum(order_count), 0)::bigint, coalesce(sum(total_revenue), 0) from {}"
    ).format(agg)
    daily_sql = sql.SQL(
        "select order_date, sum(total_revenue) from {agg} "
        "where order_date > (select max(order_date) from {agg}) - %s "
        "group by order_date order by order_date"
    ).format(agg=agg)
    with psycopg.connect(settings.dbt_pg_dsn) as conn:
        try:
            cells, cell_orders, cell_revenue = conn.execute(batch_sql).fetchone()
        except psycopg.errors.UndefinedTable:
            conn.rollback()
            cells, cell_orders, cell_revenue = 0, 0, 0
        orders, revenue = conn.execute(totals_sql).fetchone()
        daily = conn.execute(daily_sql, [days]).fetchall()
    return {
        "batch": {"cells": cells, "orders": cell_orders, "revenue": float(cell_revenue)},
        "totals": {"orders": orders, "revenue": float(revenue)},
        "daily": [(day, float(value or 0)) for day, value in daily],
    }
