"""`olist bench ingest`: our consumer vs a naive one vs the raw ceilings, on the same messages.

(a) ours: `Ingestor` (validation, COPY, offsets in the same transaction);
(b) naive, as the original Airflow design had it: auto-committed offsets, batches of 100
    written with psycopg2 `executemany`, no validation;
(c) ceilings: kafka-python reading the same messages with no database, and one COPY of the same
    rows with no Kafka. Every figure is events per second over the same topic and database.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import psycopg
import psycopg2
from kafka import KafkaConsumer, TopicPartition
from psycopg import sql

from kafka_io.consumer import EVENT_COLUMNS
from kafka_io.kafka_client import client_config
from kafka_io.migrations import migrate
from kafka_io.producer import ensure_topic
from kafka_io.producer import replay as run_replay
from kafka_io.settings import MIB
from kafka_io.workers import default_workers, ingest
from olist_dev.settings import StackSettings


def _row(message, topic: str) -> tuple:
    """A raw_orders row from a message, read with plain json.loads (no validation)."""
    doc = json.loads(message.value)
    # Epoch 0: the bench's topic is never recreated.
    return (doc["event_id"], doc["order"]["order_id"], doc["event_type"], doc["event_time"],
            doc["sequence"], message.value.decode(), topic, 0, message.partition,
            message.offset)  # fmt: skip


def _all_partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]


def kafka_ceiling(s: StackSettings, topic: str, total: int) -> tuple[float, list]:
    """kafka-python alone: read every message from the beginning, no database."""
    consumer = KafkaConsumer(
        **client_config(s),
        enable_auto_commit=False,
        max_poll_records=5000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    consumer.assign(_all_partitions(consumer, topic))
    consumer.seek_to_beginning()
    messages = []
    started = time.perf_counter()
    while len(messages) < total:
        for batch in consumer.poll(timeout_ms=1000).values():
            messages.extend(batch)
    seconds = time.perf_counter() - started
    consumer.close(autocommit=False)
    return seconds, messages


def copy_ceiling(s: StackSettings, schema: str, topic: str, messages: list) -> float:
    """One COPY of the same rows into a raw_orders-shaped table, no Kafka, no validation."""
    rows = [_row(m, topic) for m in messages]
    table = sql.Identifier(schema, "copy_ceiling")
    with psycopg.connect(s.pg_dsn) as conn:
        conn.execute(
            sql.SQL("create table {} (like {} including all)").format(
                table, sql.Identifier(schema, "raw_orders")
            )
        )
        conn.commit()
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(sql.SQL("copy {} (" + EVENT_COLUMNS + ") from stdin").format(table)) as copy,
        ):
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started


def ours(s: StackSettings, schema: str, topic: str, workers: int) -> float:
    """`olist ingest --until-caught-up` as it runs by default (one process per core)."""
    group = f"bench-ours-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    stats = ingest(s, workers=workers, topic=topic, group=group, schema=schema)
    assert stats.inserted == stats.messages, stats
    return time.perf_counter() - started


def naive(s: StackSettings, schema: str, topic: str, total: int) -> float:
    """The original design: auto-commit, json.loads, executemany of 100 rows per commit."""
    table = f'"{schema}".naive_orders'
    conn = psycopg2.connect(s.pg_dsn)
    with conn.cursor() as cur:
        cur.execute(f'create table {table} (like "{schema}".raw_orders including all)')  # noqa: S608 (bench-owned identifiers)
    conn.commit()
    consumer = KafkaConsumer(
        topic,
        **client_config(s),
        group_id=f"bench-naive-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=True,
        auto_offset_reset="earliest",
    )
    values = ", ".join(["%s"] * len(EVENT_COLUMNS.split(",")))
    insert = f"insert into {table} ({EVENT_COLUMNS}) values ({values})"  # noqa: S608
    done, batch = 0, []
    started = time.perf_counter()
    with conn.cursor() as cur:
        while done < total:
            for records in consumer.poll(timeout_ms=1000).values():
                for m in records:
                    batch.append(_row(m, topic))
                    if len(batch) == 100:
                        cur.executemany(insert, batch)
                        conn.commit()
                        done += len(batch)
                        batch = []
            if batch and done + len(batch) >= total:
                cur.executemany(insert, batch)
                conn.commit()
                done += len(batch)
                batch = []
    seconds = time.perf_counter() - started
    consumer.close()
    conn.close()
    return seconds


def run_ingest_bench(
    s: StackSettings,
    events: Iterable[dict],
    *,
    admin_dsn: str,
    output: Path,
    repeat: int = 1,
    workers: int | None = None,
    fetch_sizes: Sequence[tuple[int, int]] = (),
) -> dict:
    """Replay ``events`` into a fresh topic, then time each contender on it; write JSON.

    ``fetch_sizes``: (all, per partition) fetch limits in MiB to run our consumer with, each
    as its own contender (``ours 8/1``) in the same rounds; none: the settings' limits."""
    from olist_dev.stack.postgres import provision_raw_schema

    workers = workers or default_workers()
    tag = uuid.uuid4().hex[:8]
    topic, schema = f"bench.orders.{tag}", f"bench_{tag}"
    ensure_topic(s, topic, s.kafka_partitions)
    total = run_replay(events, settings=s, topic=topic).events
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        provision_raw_schema(conn, s, schema)
    try:
        with psycopg.connect(s.pg_dsn, autocommit=True) as conn:
            migrate(conn, schema)
        variants = _ours_variants(s, fetch_sizes)
        timings: dict[str, list[float]] = {
            **{name: [] for name in variants},
            "naive": [],
            "kafka_ceiling": [],
            "copy_ceiling": [],
        }
        for _ in range(repeat):
            seconds, messages = kafka_ceiling(s, topic, total)
            timings["kafka_ceiling"].append(seconds)
            timings["copy_ceiling"].append(copy_ceiling(s, schema, topic, messages))
            del messages
            for name, settings in variants.items():
                timings[name].append(ours(settings, schema, topic, workers))
                _reset(s, schema)
            timings["naive"].append(naive(s, schema, topic, total))
            _reset(s, schema)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(schema)))
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(**client_config(s))
        admin.delete_topics([topic])
        admin.close()
    rate = {k: total / statistics.median(v) for k, v in timings.items()}
    slower_ceiling = min(rate["kafka_ceiling"], rate["copy_ceiling"])
    result = {
        "events": total,
        "repeat": repeat,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "ours_workers": workers,
        "seconds": timings,
        "events_per_second": {k: round(v) for k, v in rate.items()},
        "fetch_limits_mib": {
            name: [
                settings.kafka_fetch_max_bytes // MIB,
                settings.kafka_max_partition_fetch_bytes // MIB,
            ]
            for name, settings in variants.items()
        },
        "ratios": {
            **{f"{n}_vs_naive": round(rate[n] / rate["naive"], 2) for n in variants},
            **{f"{n}_vs_slower_ceiling": round(rate[n] / slower_ceiling, 3) for n in variants},
        },
        "targets": {
            **{f"{n}_vs_naive": 5.0 for n in variants},
            **{f"{n}_vs_slower_ceiling": 0.5 for n in variants},
        },
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _ours_variants(s: StackSettings, fetch_sizes: Sequence[tuple[int, int]]) -> dict:
    """Our consumer's contenders by name: one per (all, per partition) fetch limit in MiB."""
    if not fetch_sizes:
        return {"ours": s}
    return {
        f"ours {total}/{partition}": s.model_copy(
            update={
                "kafka_fetch_max_bytes": total * MIB,
                "kafka_max_partition_fetch_bytes": partition * MIB,
            }
        )
        for total, partition in fetch_sizes
    }


def _reset(s: StackSettings, schema: str) -> None:
    """Empty the tables between repeats so every round writes the same rows."""
    with psycopg.connect(s.pg_dsn, autocommit=True) as conn:
        for table in ("raw_orders", "raw_orders_rejected", "consumer_offsets"):
            conn.execute(sql.SQL("truncate {}").format(sql.Identifier(schema, table)))
        for table in ("copy_ceiling", "naive_orders"):
            conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(schema, table)))
