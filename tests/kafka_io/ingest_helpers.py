"""Helpers for ingestion tests: produce to a test topic, run `olist ingest`, read raw tables."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable

import psycopg
from kafka import KafkaProducer
from psycopg import sql

from kafka_io.contract import encode_event, event_key
from kafka_io.kafka_client import client_config
from olist_dev.settings import StackSettings
from tests.conftest import REPO_ROOT


def produce_events(settings: StackSettings, topic: str, events: Iterable[dict]) -> int:
    return produce_raw(settings, topic, ((event_key(e), encode_event(e)) for e in events))


def produce_raw(settings: StackSettings, topic: str, messages: Iterable[tuple]) -> int:
    producer = KafkaProducer(
        **client_config(settings), acks="all", max_request_size=2 * 1024 * 1024
    )
    futures = [producer.send(topic, key=k, value=v) for k, v in messages]
    producer.flush()
    for future in futures:
        future.get(timeout=30)
    producer.close()
    return len(futures)


def ingest_cmd(topic: str, schema: str, group: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "kafka_io.cli", "ingest", "--topic", topic, "--schema", schema,
        "--group", group, *extra,
    ]  # fmt: skip


def run_ingest(topic: str, schema: str, group: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ingest_cmd(topic, schema, group, "--until-caught-up", *extra),
        capture_output=True, text=True, cwd=REPO_ROOT, env=dict(os.environ), timeout=600,
    )  # fmt: skip


def start_ingest(topic: str, schema: str, group: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        ingest_cmd(topic, schema, group, *extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
    )  # fmt: skip


def fetch(
    settings: StackSettings, query: str, schema: str, params: list | None = None
) -> list[tuple]:
    with psycopg.connect(settings.pg_dsn) as conn:
        return conn.execute(sql.SQL(query).format(schema=sql.Identifier(schema)), params).fetchall()


def stored_offsets(settings: StackSettings, schema: str, group: str, topic: str) -> dict[int, int]:
    rows = fetch(
        settings,
        "select kafka_partition, next_offset from {schema}.consumer_offsets "
        "where consumer_group = %s and kafka_topic = %s",
        schema,
        [group, topic],
    )
    return dict(rows)


def kafka_committed(settings: StackSettings, group: str, topic: str) -> dict[int, int]:
    from kafka_io.lag import group_lag

    return {p.partition: p.committed for p in group_lag(settings, group, topic)}


def end_offsets(settings: StackSettings, topic: str) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**client_config(settings))
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: o for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()
