"""The whole real dataset (~395k events): 99% built, 1% added incrementally. The marts have
Olist's known sizes, equal a --full-refresh build and the Python recomputation. And the real
replay through Kafka with hostile messages of every class mixed in (issue #10)."""

from __future__ import annotations

import copy
import time
from collections import Counter

import pytest
from psycopg import sql

from kafka_io.contract import MAX_MESSAGE_BYTES, EventDocument, encode_event, event_key
from kafka_io.olist_csv import replay_events
from olist_dev.stack.common import unique_name
from tests.conftest import OLIST_DATA_DIR
from tests.dbt.expected_marts import (
    expected_agg_daily_revenue,
    expected_dim_customers,
    expected_fact_orders,
)
from tests.dbt.test_incremental import TABLES, table_difference
from tests.kafka_io.ingest_helpers import produce_raw, run_ingest
from tests.kafka_io.test_contract_properties import consumer_accounting

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

    assert_marts_equal_the_csvs(dbt_env, olist_data)


def assert_marts_equal_the_csvs(dbt_env, olist_data) -> None:
    """Every mart row equals the independent Python computation from the CSVs."""
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


def hostile_messages(event: EventDocument) -> dict[str, tuple[bytes | None, bytes, str]]:
    """One message of every class the contract refuses (issue #10), made from a real event:
    name -> (key, value, the reason's kind and text it must contain)."""
    key, value = event_key(event), encode_event(event)

    def edited(edit) -> bytes:
        document = copy.deepcopy(event)
        edit(document["order"])
        return encode_event(document)

    def swapped(old: bytes, new: bytes) -> bytes:
        assert old in value
        return value.replace(old, new, 1)

    price = b'"price":' + str(event["order"]["items"][0]["price"]).encode()
    too_many = event["order"]["items"] * 1001
    return {
        "impossible date": (
            key,
            edited(lambda o: o.update(purchased_at="2017-02-30T10:00:00")),
            "schema_violation:is not a 'local-date-time'",
        ),
        "year 0": (
            key,
            edited(lambda o: o.update(estimated_delivery_date="0000-01-01")),
            "schema_violation:$.order.estimated_delivery_date",
        ),
        "out-of-range number": (
            key,
            swapped(b'"sequence":1', b'"sequence":2147483648'),
            "schema_violation:$.sequence: 2147483648 is greater than the maximum",
        ),
        "money whose sums would overflow": (
            key,
            swapped(price, b'"price":999999999999.99'),
            "schema_violation:is greater than the maximum of Decimal('9999999.99')",
        ),
        "too many items": (
            key,
            edited(lambda o: o.update(items=too_many)),
            "schema_violation:is too long",
        ),
        "deep nesting": (key, b"[" * 500_000 + b"]" * 500_000, "too_deep:500000 deep"),
        "lone surrogate": (
            key,
            swapped(b'"sequence":1', b'"sequence":1,"\\ud800":0'),
            "lone_surrogate:\\ud800",
        ),
        "NaN": (key, swapped(price, b'"price":NaN'), "invalid_json:NaN is not valid JSON"),
        "duplicate keys": (
            key,
            swapped(b'"sequence":1', b'"sequence":1,"sequence":1'),
            "duplicate_key:'sequence' appears more than once",
        ),
        "huge integer": (
            key,
            swapped(b'"sequence":1', b'"sequence":1' + b"0" * 5000),
            "number_out_of_range:5001 digits",
        ),
        "oversized": (key, value + b" " * MAX_MESSAGE_BYTES, "oversized:bytes > 1000000"),
        "not UTF-8": (key, swapped(b'"sequence":1', b'"sequence\xff":1'), "not_utf8:can't decode"),
        "bad key": (b"\x00\xff not an order id", value, "key_mismatch:!= order_id"),
        "empty": (key, b"", "empty:no value"),
    }


def interleaved(good: list, bad: list) -> list:
    """`good` with the `bad` spread evenly through it (none first, none last)."""
    step = len(good) // (len(bad) + 1)
    out = list(good)
    for n, message in reversed(list(enumerate(bad, start=1))):
        out.insert(n * step, message)
    return out


def test_real_replay_with_hostile_messages_through_kafka(
    settings, dbt_env, olist_data, kafka_topic
):
    """Acceptance of issue #10: the real replay with one hostile message of every class mixed
    in, produced to Kafka and ingested by `olist ingest`: every good event stored exactly once
    (the consumer's own counts), every hostile message a dead letter naming its class, and the
    marts built by dbt still equal to the CSVs."""
    events = list(replay_events(OLIST_DATA_DIR))
    hostile = hostile_messages(events[0])
    started = time.monotonic()
    good = [(event_key(e), encode_event(e)) for e in events]
    produce_raw(settings, kafka_topic, interleaved(good, [m[:2] for m in hostile.values()]))
    produce_seconds = time.monotonic() - started
    group = unique_name("g")
    started = time.monotonic()
    result = run_ingest(kafka_topic, dbt_env.raw_schema, group)
    ingest_seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]

    accounting = consumer_accounting(settings, dbt_env.raw_schema, group, kafka_topic)
    assert accounting == {
        "inserted": len(events),
        "duplicates": 0,
        "rejected": len(hostile),
        "consumed": len(events) + len(hostile),
    }
    letters = dbt_env.rows(
        sql.SQL(
            "select message_key, message_value, error_reason from {}.raw_orders_rejected"
        ).format(sql.Identifier(dbt_env.raw_schema))
    )
    by_message = {
        (bytes(r["message_key"] or b""), bytes(r["message_value"] or b"")): r["error_reason"]
        for r in letters
    }
    assert len(by_message) == len(hostile)
    for name, (key, value, expected) in hostile.items():
        kind, text = expected.split(":", 1)
        reason = by_message[(key or b"", value)]
        assert reason.startswith(kind + ": ") and text in reason, (name, reason)

    started = time.monotonic()
    dbt_env.dbt("build")
    dbt_seconds = time.monotonic() - started
    assert_marts_equal_the_csvs(dbt_env, olist_data)
    kinds = Counter(reason.split(":", 1)[0] for reason in by_message.values())
    print(
        f"hostile replay: {len(events):,} events + {len(hostile)} hostile produced in "
        f"{produce_seconds:.1f}s, `olist ingest --until-caught-up` {ingest_seconds:.1f}s, "
        f"dead letters {dict(kinds)}, dbt build {dbt_seconds:.1f}s"
    )
