"""The whole real dataset (~395k events): 99% built, 1% added incrementally. The marts have
Olist's known sizes, equal a --full-refresh build and the Python recomputation."""

from __future__ import annotations

import time

import pytest

from kafka_io.olist_csv import replay_events
from tests.conftest import OLIST_DATA_DIR
from tests.dbt.expected_marts import (
    expected_agg_daily_revenue,
    expected_dim_customers,
    expected_fact_orders,
)
from tests.dbt.test_incremental import TABLES, table_difference

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_full_real_data(dbt_env, olist_data):
    events = list(replay_events(OLIST_DATA_DIR))
    assert len(events) == 394_806
    cut = len(events) * 99 // 100
    # The bulk load right before the batch: the batch's build reads its offsets alone.
    dbt_env.load(events[:cut])
    dbt_env.dbt("build")
    dbt_env.load(events[cut:])
    started = time.monotonic()
    incremental = dbt_env.dbt("build")
    incremental_seconds = time.monotonic() - started
    full_prefix = dbt_env.prefix + "full_"
    started = time.monotonic()
    dbt_env.dbt("build", "--full-refresh", prefix=full_prefix)
    full_seconds = time.monotonic() - started
    print(
        f"dbt build: full-refresh {full_seconds:.1f}s, incremental (1%) {incremental_seconds:.1f}s"
    )

    for table in TABLES:
        assert table_difference(dbt_env, table, dbt_env.prefix, full_prefix) == 0, table
    batch_orders = {e["order"]["order_id"] for e in events[cut:]}
    assert incremental.rows_affected("int_orders_latest") == len(batch_orders)

    facts = {r["order_id"]: r for r in dbt_env.table("fact_orders")}
    customers = {r["customer_unique_id"]: r for r in dbt_env.table("dim_customers")}
    assert len(facts) == 99_441
    assert len(customers) == 96_096
    expected = expected_fact_orders(olist_data.orders, olist_data)
    assert facts == expected
    assert customers == expected_dim_customers(expected, olist_data)
    revenue = {
        (r["order_date"], r["customer_state"]): r for r in dbt_env.table("agg_daily_revenue")
    }
    assert revenue == expected_agg_daily_revenue(expected)
