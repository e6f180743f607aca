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
