"""Fixtures for the dbt project tests, on the real local stack with production privileges.

Each test gets its own raw schema (owned by the ingestion role, readable by the dbt role, its
tables created by the project's migration) and its own schema prefix for dbt's `staging` and
`analytics`. Events come from the project's Olist replay (`kafka_io.olist_csv`) and are
written to raw_orders by the ingestion role exactly as the consumer stores them. dbt runs as
the dbt role. Every schema a test creates is dropped afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from kafka_io.contract import Event, encode_event
from kafka_io.migrations import migrate
from kafka_io.olist_csv import OlistOrder, events_in_time_order, read_orders
from kafka_io.settings import Settings
from kafka_io.stack.postgres import provision_raw_schema
from tests.conftest import OLIST_DATA_DIR, REPO_ROOT, admin_connect, unique_name
from tests.dbt.expected_marts import OlistData, read_olist

DBT_PROJECT = REPO_ROOT / "dbt"
DBT_BIN = Path(sys.executable).parent / "dbt"
MART_SCHEMAS = ("staging", "analytics")
RAW_COLUMNS = (
    "event_id, order_id, event_type, event_time, sequence, payload,"
    " kafka_topic, kafka_partition, kafka_offset"
)


@dataclass
class DbtRun:
    returncode: int
    output: str
    results: list[dict]

    def rows_affected(self, model: str) -> int | None:
        for result in self.results:
            if result["unique_id"] == f"model.olist.{model}":
                return result["adapter_response"].get("rows_affected")
        return None


class DbtEnv:
    """One test's raw schema, schema prefix(es) and dbt invocations.

    Loads go through an ingestion-role connection (it owns raw_orders), dbt connects as the
    dbt role, and assertions read the marts through a superuser connection.
    """

    def __init__(self, settings: Settings, work_dir: Path):
        self.settings = settings
        self.work_dir = work_dir
        self.raw_schema = unique_name("t_raw")
        self.prefix = unique_name("t") + "_"
        self.prefixes = [self.prefix]
        self.next_offset = 0
        self.admin = admin_connect(settings)
        self.ingest = psycopg.connect(settings.pg_dsn, autocommit=True)
        try:
            provision_raw_schema(self.admin, settings, self.raw_schema)
            migrate(self.ingest, self.raw_schema)
        except BaseException:
            self.close()
            raise

    def schema(self, name: str, prefix: str | None = None) -> str:
        return f"{self.prefix if prefix is None else prefix}{name}"

    def load(self, events: Iterable[Event]) -> None:
        """COPY events into raw_orders in one transaction, as the consumer stores them: the
        payload is the message value (`encode_event`), offsets continue from the last load."""
        copy_sql = sql.SQL("copy {}.raw_orders ({}) from stdin").format(
            sql.Identifier(self.raw_schema), sql.SQL(RAW_COLUMNS)
        )
        topic = self.settings.kafka_topic
        with self.ingest.transaction(), self.ingest.cursor() as cur, cur.copy(copy_sql) as copy:
            for event in events:
                copy.write_row(
                    (
                        event["event_id"],
                        event["order"]["order_id"],
                        event["event_type"],
                        event["event_time"],
                        event["sequence"],
                        encode_event(event).decode("utf-8"),
                        topic,
                        0,
                        self.next_offset,
                    )
                )
                self.next_offset += 1

    def age_raw(self, interval: str = "1 hour") -> None:
        """Pretend every event so far was ingested `interval` earlier (beyond the lookback)."""
        self.ingest.execute(
            sql.SQL("update {}.raw_orders set ingested_at = ingested_at - %s::interval").format(
                sql.Identifier(self.raw_schema)
            ),
            (interval,),
        )

    def dbt_env_vars(self, prefix: str) -> dict[str, str]:
        s = self.settings
        # Nothing OLIST_* leaks in from the caller: dbt sees the dbt role's credentials only.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("OLIST_")}
        return {
            **inherited,
            "OLIST_PG_HOST": s.pg_host,
            "OLIST_PG_PORT": str(s.pg_port),
            "OLIST_PG_DATABASE": s.pg_database,
            "OLIST_DBT_USER": s.dbt_user,
            "OLIST_DBT_PASSWORD": s.dbt_password,
            "OLIST_RAW_SCHEMA": self.raw_schema,
            "OLIST_SCHEMA_PREFIX": prefix,
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }

    def dbt(self, *args: str, prefix: str | None = None, check: bool = True) -> DbtRun:
        prefix = self.prefix if prefix is None else prefix
        if prefix not in self.prefixes:
            self.prefixes.append(prefix)
        target = self.work_dir / f"target_{prefix}"
        proc = subprocess.run(
            [
                str(DBT_BIN),
                *args,
                "--project-dir",
                str(DBT_PROJECT),
                "--profiles-dir",
                str(DBT_PROJECT),
                "--target-path",
                str(target),
                "--log-path",
                str(self.work_dir / "logs"),
            ],
            env=self.dbt_env_vars(prefix),
            capture_output=True,
            text=True,
            timeout=1800,
        )
        results_file = target / "run_results.json"
        results = json.loads(results_file.read_text())["results"] if results_file.exists() else []
        run = DbtRun(proc.returncode, proc.stdout + proc.stderr, results)
        if check and proc.returncode != 0:
            pytest.fail(f"dbt {' '.join(args)} failed:\n{run.output[-6000:]}")
        return run

    def rows(self, query: sql.Composable | str, params: Sequence | None = None) -> list[dict]:
        with self.admin.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, params).fetchall()

    def table(self, name: str, layer: str = "analytics", prefix: str | None = None) -> list[dict]:
        return self.rows(
            sql.SQL("select * from {}.{}").format(
                sql.Identifier(self.schema(layer, prefix)), sql.Identifier(name)
            )
        )

    def close(self) -> None:
        self.ingest.close()
        self.admin.close()
        # A fresh connection: drops even if the test left the others in a bad state.
        schemas = [self.raw_schema] + [p + s for p in self.prefixes for s in MART_SCHEMAS]
        with admin_connect(self.settings) as conn:
            for schema in schemas:
                conn.execute(
                    sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema))
                )


def _require_data() -> None:
    if not (OLIST_DATA_DIR / "olist_orders_dataset.csv.gz").exists():
        pytest.fail(f"Olist data not found at {OLIST_DATA_DIR} (set OLIST_DATA_DIR)")


@pytest.fixture(scope="session")
def olist_data() -> OlistData:
    """The Olist CSV rows, for the independent expected values."""
    _require_data()
    return read_olist(OLIST_DATA_DIR)


@pytest.fixture(scope="session")
def olist_orders() -> list[OlistOrder]:
    """Every order as the project's replay reads it, in purchase-time order."""
    _require_data()
    return list(read_orders(OLIST_DATA_DIR))


@pytest.fixture(scope="session")
def events_of(olist_orders):
    """The project's events of the given orders (CSV rows or ids), in event-time order."""

    def events(orders: Iterable[dict[str, str] | str]) -> list[Event]:
        ids = {o if isinstance(o, str) else o["order_id"] for o in orders}
        return list(events_in_time_order(o for o in olist_orders if o.order_id in ids))

    return events


@pytest.fixture
def dbt_env(settings, tmp_path) -> Iterator[DbtEnv]:
    env = DbtEnv(settings, tmp_path)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture(scope="module")
def module_dbt_env(settings, tmp_path_factory) -> Iterator[DbtEnv]:
    env = DbtEnv(settings, tmp_path_factory.mktemp("dbt"))
    try:
        yield env
    finally:
        env.close()
