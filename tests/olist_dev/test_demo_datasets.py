"""`olist demo` keeps datasets apart: the same dataset again is idempotent, another one is refused
in one line with nothing written, and --reset starts from empty so the marts hold exactly the
new dataset. The real CLI in a subprocess, on the real stack, in its own topic, consumer group,
raw schema, dbt schema prefix and Dagster database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaAdminClient
from psycopg import sql

from kafka_io.audit import read_kafka_log
from kafka_io.kafka_client import client_config
from kafka_io.lag import group_lag
from kafka_io.settings import default_secrets_file
from kafka_io.synthetic import synthetic_events
from olist_dev.datasets import (
    Contents,
    Dataset,
    marts_line,
    olist_dataset,
    refusal,
    synthetic_dataset,
)
from olist_dev.settings import StackSettings
from olist_dev.stack.common import unique_name
from olist_dev.stack.postgres import admin_connect, provision_dbt_schemas

OLIST = Path(sys.executable).with_name("olist")
SETTINGS = StackSettings(kafka_topic="t.orders", raw_schema="raw", schema_prefix="")


# --- pure ------------------------------------------------------------------------------------
def test_a_data_dir_is_one_dataset_however_it_is_spelled(tmp_path, monkeypatch):
    (tmp_path / "olist").mkdir()
    monkeypatch.chdir(tmp_path)
    assert olist_dataset(Path("olist")) == olist_dataset(tmp_path / "x" / ".." / "olist")
    assert olist_dataset(Path("olist")) == Dataset(
        f"olist:{tmp_path}/olist", f"Olist CSVs ({tmp_path}/olist)"
    )


def test_synthetic_datasets_differ_by_size_and_seed():
    assert synthetic_dataset(10_000, 42) == Dataset(
        "synthetic:10000,42", "synthetic orders (10,000, seed 42)"
    )
    assert len({synthetic_dataset(10, 1).key, synthetic_dataset(10, 2).key,
                synthetic_dataset(11, 1).key}) == 3  # fmt: skip


def test_the_same_dataset_again_or_an_empty_warehouse_is_accepted():
    synthetic = synthetic_dataset(100, 1)
    assert refusal(synthetic, synthetic, Contents(400, 400, 100), SETTINGS) is None
    assert refusal(None, synthetic, Contents(0, 0, 0), SETTINGS) is None


def test_another_dataset_is_refused_naming_both_and_the_reset():
    held, wanted = synthetic_dataset(100, 1), olist_dataset(Path("/data/olist"))
    assert refusal(held, wanted, Contents(400, 400, 100), SETTINGS) == (
        "the warehouse holds synthetic orders (100, seed 1), not Olist CSVs (/data/olist); add "
        "--reset to empty topic t.orders, schema raw and the marts (analytics) first"
    )


def test_data_of_no_recorded_dataset_is_refused_with_what_each_layer_holds():
    # An older demo (before markers), or events replayed by hand: only the topic may hold them.
    message = refusal(None, synthetic_dataset(5, 1), Contents(39_695, 0, 0), SETTINGS)
    assert message == (
        "the warehouse holds an unrecorded dataset (39,695 events in topic t.orders, 0 rows in "
        "raw.raw_orders, 0 orders in analytics.fact_orders), not synthetic orders (5, seed 1); "
        "add --reset to empty topic t.orders, schema raw and the marts (analytics) first"
    )


def test_the_summary_names_the_dataset_the_marts_hold():
    held = olist_dataset(Path("/data/olist"))
    assert marts_line(held, 99_441, 96_096) == (
        "marts hold: Olist CSVs (/data/olist): 99,441 orders · 96,096 customers"
    )
    assert marts_line(None, 3, 3) == "marts hold: an unrecorded dataset: 3 orders · 3 customers"


# --- on the stack ----------------------------------------------------------------------------
@dataclass
class DemoEnv:
    settings: StackSettings  # the demo's view: its topic, group, schemas and Dagster database
    env: dict[str, str]

    def demo(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(OLIST), "demo", *args], env=self.env, capture_output=True, text=True, timeout=900
        )

    def count(self, dsn: str, schema: str, table: str) -> int:
        with psycopg.connect(dsn) as conn:
            query = sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))
            return conn.execute(query).fetchone()[0]

    def rows(self, query: str, *idents: tuple[str, ...]) -> list[tuple]:
        with admin_connect(self.settings) as conn:
            composed = sql.SQL(query).format(*(sql.Identifier(*i) for i in idents))
            return conn.execute(composed).fetchall()

    def state(self) -> dict:
        """Everything a refused demo must leave as it was."""
        s = self.settings
        log = read_kafka_log(s, s.kafka_topic)
        with psycopg.connect(s.admin_dsn_for(s.dagster_pg_database)) as conn:
            (runs,) = conn.execute("select count(*) from runs").fetchone()
        return {
            "topic": (log.topic_id, log.starts, log.ends),
            "raw_orders": self.count(s.pg_dsn, s.raw_schema, "raw_orders"),
            "offsets": self.rows(
                "select * from {} order by 1, 2, 3, 4", (s.raw_schema, "consumer_offsets")
            ),
            "marker": self.rows("select * from {}", (s.raw_schema, "dataset")),
            "fact_orders": self.count(s.dbt_pg_dsn, s.analytics_schema, "fact_orders"),
            "dagster_runs": runs,
        }


@pytest.fixture
def demo_env(settings, raw_schema, tmp_path) -> Iterator[DemoEnv]:
    topic, group, prefix = unique_name("t.demo"), unique_name("g"), unique_name("t") + "_"
    dagster_db = unique_name("t_dagster")
    with admin_connect(settings) as conn:
        provision_dbt_schemas(conn, settings, prefix)
    with psycopg.connect(settings.admin_dsn_for("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("create database {} owner {}").format(
                sql.Identifier(dagster_db), sql.Identifier(settings.dagster_pg_user)
            )
        )
    env = {
        "OLIST_KAFKA_TOPIC": topic,
        "OLIST_KAFKA_GROUP": group,
        "OLIST_KAFKA_PARTITIONS": "3",
        "OLIST_RAW_SCHEMA": raw_schema,
        "OLIST_SCHEMA_PREFIX": prefix,
        "OLIST_DAGSTER_PG_DATABASE": dagster_db,
        # Its own DAGSTER_HOME (the demo's is <stack dir>/dagster), the stack's passwords.
        "OLIST_STACK_DIR": str(tmp_path),
        "OLIST_SECRETS_FILE": str(default_secrets_file()),
    }
    view = settings.model_copy(
        update={
            "kafka_topic": topic,
            "kafka_group": group,
            "raw_schema": raw_schema,
            "schema_prefix": prefix,
            "dagster_pg_database": dagster_db,
        }
    )
    yield DemoEnv(view, {**os.environ, **env})
    with admin_connect(settings) as conn:
        for layer in ("staging", "analytics"):
            conn.execute(
                sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(prefix + layer))
            )
    with psycopg.connect(settings.admin_dsn_for("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dagster_db))
        )
    admin = KafkaAdminClient(**client_config(settings))
    try:
        if topic in admin.list_topics():
            admin.delete_topics([topic])
    finally:
        admin.close()


def expected_marts(events: list[dict]) -> tuple[int, Decimal]:
    """Orders, and revenue as DESIGN.md defines it (item prices of orders whose final status is
    neither canceled nor unavailable), from each order's last event."""
    last: dict[str, dict] = {}
    for event in events:
        order = event["order"]
        if event["sequence"] > last.get(order["order_id"], {}).get("sequence", 0):
            last[order["order_id"]] = {"sequence": event["sequence"], "order": order}
    revenue = sum(
        (
            Decimal(str(item["price"]))
            for seen in last.values()
            if seen["order"]["order_status"] not in ("canceled", "unavailable")
            for item in seen["order"]["items"]
        ),
        Decimal(0),
    )
    return len(last), revenue


def summary_value(stdout: str, prefix: str) -> str:
    return next(line.strip() for line in stdout.splitlines() if line.strip().startswith(prefix))


def test_demo_keeps_datasets_apart_and_reset_starts_from_empty(demo_env, tmp_path):
    s = demo_env.settings
    first = demo_env.demo("--synthetic", "120", "--seed", "1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert summary_value(first.stdout, "marts hold:").startswith(
        "marts hold: synthetic orders (120, seed 1): 120 orders · "
    )

    # Another dataset: refused before anything is read or written. The directory need not hold
    # CSVs: nothing of it is read.
    other = tmp_path / "olist"
    other.mkdir()
    before = demo_env.state()
    refused = demo_env.demo("--data-dir", str(other))
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.splitlines() == [
        f"olist: error: the warehouse holds synthetic orders (120, seed 1), not Olist CSVs "
        f"({other}); add --reset to empty topic {s.kafka_topic}, schema {s.raw_schema} and the "
        f"marts ({s.analytics_schema}) first"
    ]
    assert demo_env.state() == before

    # The same dataset again: every event a duplicate, the marts unchanged.
    again = demo_env.demo("--synthetic", "120", "--seed", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    first_events = before["raw_orders"]
    assert summary_value(again.stdout, "events ingested:").startswith(
        f"events ingested: 0 new, {first_events:,} duplicates, 0 dead letters"
    )
    assert demo_env.count(s.dbt_pg_dsn, s.analytics_schema, "fact_orders") == 120

    # --reset: the marts hold exactly the second dataset, from a new topic (new id, epoch 0).
    reset = demo_env.demo("--reset", "--synthetic", "80", "--seed", "2")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    events = list(synthetic_events(80, seed=2))
    orders, revenue = expected_marts(events)
    assert orders == 80
    assert demo_env.count(s.dbt_pg_dsn, s.analytics_schema, "fact_orders") == orders
    with psycopg.connect(s.dbt_pg_dsn) as conn:
        (marts_revenue, marts_orders) = conn.execute(
            sql.SQL("select sum(total_revenue), sum(order_count) from {}").format(
                sql.Identifier(s.analytics_schema, "agg_daily_revenue")
            )
        ).fetchone()
    assert (marts_revenue, marts_orders) == (revenue, orders)
    assert demo_env.count(s.pg_dsn, s.raw_schema, "raw_orders") == len(events)
    log = read_kafka_log(s, s.kafka_topic)
    assert sum(log.ends.values()) - sum(log.starts.values()) == len(events)
    assert log.topic_id != before["topic"][0]
    assert demo_env.rows(
        "select kafka_epoch, topic_id, reason from {}", (s.raw_schema, "topic_epochs")
    ) == [(0, log.topic_id, "first ingestion")]
    assert sum(p.lag for p in group_lag(s, s.kafka_group, s.kafka_topic)) == 0
    assert [row[1] for row in demo_env.rows("select * from {}", (s.raw_schema, "dataset"))] == [
        "synthetic:80,2"
    ]
    assert summary_value(reset.stdout, "events ingested:").startswith(
        f"events ingested: {len(events):,} new, 0 duplicates, 0 dead letters"
    )
    assert summary_value(reset.stdout, "marts hold:").startswith(
        "marts hold: synthetic orders (80, seed 2): 80 orders · "
    )
