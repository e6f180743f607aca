"""An isolated dbt environment on a real PostgreSQL: its own raw schema (production privileges,
the project's migration) and its own prefix for dbt's `staging`/`analytics`, all dropped on close.

Used by `olist bench dbt` and by tests/dbt. Events are written to raw_orders by the ingestion
role exactly as the consumer stores them; dbt runs as the dbt role; reads use the superuser.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from kafka_io.contract import EventDocument, encode_event
from kafka_io.migrations import migrate
from kafka_io.settings import get_settings
from olist_assets.lib.dbt_project import DBT_PROJECT_DIR
from olist_dev.settings import StackSettings
from olist_dev.stack.common import unique_name
from olist_dev.stack.postgres import admin_connect, provision_dbt_schemas, provision_raw_schema

DBT_BIN = Path(sys.executable).with_name("dbt")
MART_SCHEMAS = ("staging", "analytics")
RAW_COLUMNS = (
    "event_id",
    "order_id",
    "event_type",
    "event_time",
    "sequence",
    "payload",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)


@dataclass
class DbtRun:
    returncode: int
    output: str
    results: list[dict]

    def rows_affected(self, model: str) -> int | None:
        return rows_affected(self.results, model)

    def statuses(self) -> dict[str, str]:
        """unique_id → status (success, pass, fail, error, skipped, ...)."""
        return {r["unique_id"]: r["status"] for r in self.results}


@contextmanager
def environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block (DbtCliResource passes os.environ to dbt), and
    re-read the settings inside and after it (get_settings caches them per process)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


class DbtSandbox:
    """One raw schema, schema prefix(es) and the dbt invocations that build into them."""

    def __init__(self, settings: StackSettings, work_dir: Path):
        self.settings = settings
        self.work_dir = work_dir
        self.raw_schema = unique_name("t_raw")
        self.prefix = unique_name("t") + "_"
        self.prefixes = [self.prefix]
        self.next_offset = 0
        # Tests point this at a copy of the project (e.g. one with an extra dbt package).
        self.project_dir = DBT_PROJECT_DIR
        self.admin = admin_connect(settings)
        self.ingest = psycopg.connect(settings.pg_dsn, autocommit=True)
        try:
            provision_raw_schema(self.admin, settings, self.raw_schema)
            provision_dbt_schemas(self.admin, settings, self.prefix)
            migrate(self.ingest, self.raw_schema)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> DbtSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def schema(self, name: str, prefix: str | None = None) -> str:
        return f"{self.prefix if prefix is None else prefix}{name}"

    def load(self, events: Iterable[EventDocument], group: str | None = None) -> int:
        """COPY events into raw_orders in one transaction, as the consumer stores them: the
        payload is the message value (`encode_event`), offsets continue from the last load,
        and `group`'s next_offset in consumer_offsets moves past them in the same transaction
        (dbt's incremental watermark). Returns the number of events loaded."""
        copy_sql = sql.SQL("copy {}.raw_orders ({}) from stdin").format(
            sql.Identifier(self.raw_schema), sql.SQL(", ").join(map(sql.Identifier, RAW_COLUMNS))
        )
        topic = self.settings.kafka_topic
        first = self.next_offset
        with self.ingest.transaction(), self.ingest.cursor() as cur:
            self._copy_events(cur, copy_sql, topic, events)
            self._save_offset(cur, group or self.settings.kafka_group, first)
        return self.next_offset - first

    def _copy_events(self, cur, copy_sql, topic: str, events: Iterable[EventDocument]) -> None:
        with cur.copy(copy_sql) as copy:
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

    def _save_offset(self, cur, group: str, first: int) -> None:
        """The consumer's accounting row for partition 0: next_offset and rows inserted."""
        cur.execute(
            sql.SQL(
                "insert into {}.consumer_offsets as o (consumer_group, kafka_topic, "
                "kafka_partition, first_offset, next_offset, inserted) "
                "values (%s, %s, 0, %s, %s, %s) "
                "on conflict (consumer_group, kafka_topic, kafka_epoch, kafka_partition) do update set "
                "next_offset = excluded.next_offset, inserted = o.inserted + excluded.inserted"
            ).format(sql.Identifier(self.raw_schema)),
            (group, self.settings.kafka_topic, first, self.next_offset, self.next_offset - first),
        )

    def unload_from(self, offset: int) -> int:
        """Delete the events loaded at `offset` or later and move every group's next_offset
        back to it (benchmark rounds replay a batch; dbt then sees offsets go backwards)."""
        schema = sql.Identifier(self.raw_schema)
        with self.ingest.transaction():
            cur = self.ingest.execute(
                sql.SQL("delete from {}.raw_orders where kafka_offset >= %s").format(schema),
                (offset,),
            )
            self.ingest.execute(
                sql.SQL(
                    "update {}.consumer_offsets set next_offset = least(next_offset, %s)"
                ).format(schema),
                (offset,),
            )
        self.next_offset = offset
        return cur.rowcount

    def dbt_env_vars(self, prefix: str | None = None) -> dict[str, str]:
        """The environment production gives dbt, pointed at this sandbox."""
        return {
            **self.settings.dbt_env(),
            "OLIST_RAW_SCHEMA": self.raw_schema,
            "OLIST_SCHEMA_PREFIX": self.prefix if prefix is None else prefix,
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }

    def use_prefix(self, prefix: str | None) -> str:
        prefix = self.prefix if prefix is None else prefix
        if prefix not in self.prefixes:
            self.prefixes.append(prefix)
            # The dbt role creates no schema: its prefixed ones are made for it, as in production.
            provision_dbt_schemas(self.admin, self.settings, prefix)
        return prefix

    def target_path(self, prefix: str) -> Path:
        return self.work_dir / f"target_{prefix}"

    def dbt(self, *args: str, prefix: str | None = None) -> DbtRun:
        """Run the dbt CLI in a subprocess; artifacts in a target folder per prefix."""
        prefix = self.use_prefix(prefix)
        target = self.target_path(prefix)
        # Nothing OLIST_* leaks in from the caller: dbt sees the dbt role's credentials only.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("OLIST_")}
        proc = subprocess.run(
            [
                str(DBT_BIN),
                *args,
                "--project-dir",
                str(self.project_dir),
                "--profiles-dir",
                str(self.project_dir),
                "--target-path",
                str(target),
                "--log-path",
                str(self.work_dir / "logs"),
            ],
            env={**inherited, **self.dbt_env_vars(prefix)},
            capture_output=True,
            text=True,
            timeout=1800,
        )
        return DbtRun(proc.returncode, proc.stdout + proc.stderr, read_results(target))

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
        # A fresh connection: drops even if the caller left the others in a bad state.
        schemas = [self.raw_schema] + [p + s for p in self.prefixes for s in MART_SCHEMAS]
        with admin_connect(self.settings) as conn:
            for schema in schemas:
                conn.execute(
                    sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema))
                )


def rows_affected(results: list[dict], model: str) -> int | None:
    """Rows `model` wrote in a dbt run (from run_results.json's node results)."""
    for result in results:
        if result["unique_id"] == f"model.olist.{model}":
            return result["adapter_response"].get("rows_affected")
    return None


def read_results(target: Path) -> list[dict]:
    """The node results of run_results.json in `target` ([] when dbt wrote none)."""
    path = target / "run_results.json"
    return json.loads(path.read_text())["results"] if path.exists() else []
