"""An isolated end-to-end pipeline on the real daemon: its own topic, consumer group, raw schema,
dbt schema prefix and Dagster database, with `dagster dev` running on them. Used by the
end-to-end test and by `olist bench e2e` (produce-to-mart latency)."""

from __future__ import annotations

import shutil
import socket
import time
import uuid
from pathlib import Path

import psycopg
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from psycopg import sql

from kafka_io.producer import replay
from kafka_io.settings import Settings
from kafka_io.stack.common import wait_until
from kafka_io.stack.postgres import provision_raw_schema
from kafka_io.synthetic import synthetic_events
from olist_assets.devserver import DagsterDev
from olist_assets.instance import dagster_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class E2EPipeline:
    def __init__(self, settings: Settings, work_dir: Path, partitions: int = 3):
        tag = uuid.uuid4().hex[:8]
        self.tag = tag
        self.base = settings
        self.topic, self.group = f"e2e.orders.{tag}", f"e2e-{tag}"
        self.raw_schema, self.prefix = f"e2e_{tag}_raw", f"e2e_{tag}_"
        self.dagster_db = f"e2e_{tag}_dagster"
        self.partitions = partitions
        self.work_dir = work_dir
        self.settings = settings.model_copy(
            update={
                "kafka_topic": self.topic,
                "kafka_group": self.group,
                "raw_schema": self.raw_schema,
                "dagster_pg_database": self.dagster_db,
                "stack_dir": work_dir,
            }
        )
        self.server: DagsterDev | None = None
        self.orders: set[str] = set()

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> E2EPipeline:
        s = self.base
        admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
        admin.create_topics([NewTopic(self.topic, self.partitions, 1)])
        admin.close()
        with psycopg.connect(s.admin_dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("create database {} owner {}").format(
                    sql.Identifier(self.dagster_db), sql.Identifier(s.dagster_pg_user)
                )
            )
        with psycopg.connect(s.admin_dsn_for(s.pg_database), autocommit=True) as conn:
            provision_raw_schema(conn, s, self.raw_schema)
        env = {
            **dagster_env(self.settings),
            "OLIST_KAFKA_TOPIC": self.topic,
            "OLIST_KAFKA_GROUP": self.group,
            "OLIST_RAW_SCHEMA": self.raw_schema,
            "OLIST_SCHEMA_PREFIX": self.prefix,
        }
        self.server = DagsterDev(env, free_port(), self.work_dir / "dagster-dev.log").start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.stop()
        s = self.base
        with psycopg.connect(s.admin_dsn_for(s.pg_database), autocommit=True) as conn:
            for schema in (self.raw_schema, self.prefix + "staging", self.prefix + "analytics"):
                conn.execute(
                    sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema))
                )
        with psycopg.connect(s.admin_dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(
                    sql.Identifier(self.dagster_db)
                )
            )
        admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
        admin.delete_topics([self.topic])
        admin.close()
        shutil.rmtree(self.work_dir / "dagster", ignore_errors=True)

    def __enter__(self) -> E2EPipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- one round -------------------------------------------------------------------------
    def produce(self, orders: int, seed: int) -> int:
        events = list(synthetic_events(orders, seed=seed))
        self.orders |= {e["order"]["order_id"] for e in events}
        return replay(events, bootstrap=self.base.kafka_bootstrap, topic=self.topic).events

    def marts_order_count(self) -> int:
        query = sql.SQL("select coalesce(sum(order_count), 0)::bigint from {}").format(
            sql.Identifier(self.prefix + "analytics", "agg_daily_revenue")
        )
        try:
            with psycopg.connect(self.base.dbt_pg_dsn) as conn:
                return conn.execute(query).fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return 0

    def wait_for_marts(self, timeout: float = 300) -> float:
        """Seconds until agg_daily_revenue counts every order produced so far."""
        started = time.monotonic()
        if not wait_until(lambda: self.marts_order_count() == len(self.orders), timeout, 0.5):
            raise TimeoutError(
                f"agg_daily_revenue has {self.marts_order_count()} of {len(self.orders)} orders "
                f"after {timeout}s; see {self.server.log_path if self.server else '?'}"
            )
        return time.monotonic() - started

    def wait_for_checks(self, assets: list[str], timeout: float = 300) -> float:
        """Seconds until every check of ``assets`` has a finished execution for the latest
        materialization (a dbt run writes a table before its tests run)."""
        started = time.monotonic()

        def settled() -> bool:
            statuses = [s for a in assets for s in self.latest_check_statuses(a).values()]
            return bool(statuses) and not {"IN_PROGRESS", "NONE"} & set(statuses)

        if not wait_until(settled, timeout, 0.5):
            raise TimeoutError(f"checks of {assets} still running after {timeout}s")
        return time.monotonic() - started

    def runs(self) -> list[dict]:
        data = self.server.graphql(
            "{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }"
        )
        return data["runsOrError"]["results"]

    def wait_for_idle(self, timeout: float = 300) -> None:
        """Until no run is queued or running (the daemon may chain an automation run)."""
        active = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}
        if not wait_until(lambda: not active & {r["status"] for r in self.runs()}, timeout, 1.0):
            raise TimeoutError(f"runs still active after {timeout}s")

    def latest_check_statuses(self, asset: str) -> dict[str, str]:
        """Check name → status of its execution for the asset's latest materialization."""
        data = self.server.graphql(
            """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
                 ... on AssetNode { assetChecksOrError { ... on AssetChecks { checks {
                   name executionForLatestMaterialization { status } } } } } } }""",
            {"key": {"path": [asset]}},
        )
        checks = data["assetNodeOrError"]["assetChecksOrError"]["checks"]
        return {
            c["name"]: (c["executionForLatestMaterialization"] or {}).get("status", "NONE")
            for c in checks
        }
