"""An isolated end-to-end pipeline on the real daemon: its own topic, consumer group, raw schema,
dbt schema prefix and Dagster database, with `dagster dev` running on them. Used by the
end-to-end test and by `olist bench e2e` (produce-to-mart latency)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psycopg
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from psycopg import sql

from kafka_io.contract import EventDocument
from kafka_io.kafka_client import client_config
from kafka_io.producer import replay
from kafka_io.synthetic import synthetic_events
from olist_assets.lib.dbt_project import DBT_PROJECT_DIR
from olist_dev.devserver import DagsterDev
from olist_dev.instance import dagster_env
from olist_dev.settings import StackSettings
from olist_dev.stack.common import wait_until
from olist_dev.stack.postgres import provision_dbt_schemas, provision_raw_schema

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll_for(value: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T | None:
    """The first value ``value()`` returns that is not None within ``timeout`` seconds, or None."""
    deadline = time.monotonic() + timeout
    while (found := value()) is None and time.monotonic() < deadline:
        time.sleep(interval)
    return found


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc), parents first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and its children at once (a run worker and its dbt), as an OOM kill or a
    lost container would; returns the PIDs killed."""
    tree = descendants(pid)
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    return tree


class E2EPipeline:
    def __init__(
        self,
        settings: StackSettings,
        work_dir: Path,
        partitions: int = 3,
        start_server: bool = True,
    ):
        tag = uuid.uuid4().hex[:8]
        self.tag = tag
        self.base = settings
        self.topic, self.group = f"e2e.orders.{tag}", f"e2e-{tag}"
        self.raw_schema, self.prefix = f"e2e_{tag}_raw", f"e2e_{tag}_"
        self.dagster_db = f"e2e_{tag}_dagster"
        self.partitions = partitions
        self.work_dir = work_dir
        # False: start() leaves `dagster dev` to start_server(), e.g. after a bulk replay, so
        # the sensor's first run ingests and builds the whole history.
        self.start_server_on_enter = start_server
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
        self.events_produced = 0  # what the consumer's accounting must come to
        self.prefixes = [self.prefix]  # dbt schema prefixes to drop on stop

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> E2EPipeline:
        s = self.base
        admin = KafkaAdminClient(**client_config(s))
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
            provision_dbt_schemas(conn, s, self.prefix)
        if self.start_server_on_enter:
            self.start_server()
        return self

    def start_server(self) -> DagsterDev:
        """`dagster dev` (webserver + daemon) on this pipeline's instance, topic and schemas."""
        env = {
            **dagster_env(self.settings),
            "OLIST_KAFKA_TOPIC": self.topic,
            "OLIST_KAFKA_GROUP": self.group,
            "OLIST_RAW_SCHEMA": self.raw_schema,
            "OLIST_SCHEMA_PREFIX": self.prefix,
        }
        self.server = DagsterDev(env, free_port(), self.work_dir / "dagster-dev.log").start()
        return self.server

    def stop(self) -> None:
        if self.server:
            self.server.stop()
        s = self.base
        with psycopg.connect(s.admin_dsn_for(s.pg_database), autocommit=True) as conn:
            marts = [p + layer for p in self.prefixes for layer in ("staging", "analytics")]
            for schema in (self.raw_schema, *marts):
                conn.execute(
                    sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema))
                )
        with psycopg.connect(s.admin_dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(
                    sql.Identifier(self.dagster_db)
                )
            )
        admin = KafkaAdminClient(**client_config(s))
        admin.delete_topics([self.topic])
        admin.close()
        shutil.rmtree(self.work_dir / "dagster", ignore_errors=True)

    def __enter__(self) -> E2EPipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- one round -------------------------------------------------------------------------
    def produce(self, orders: int, seed: int) -> int:
        return self.produce_events(list(synthetic_events(orders, seed=seed)))

    def produce_events(self, events: list[EventDocument]) -> int:
        self.orders |= {e["order"]["order_id"] for e in events}
        produced = replay(events, settings=self.base, topic=self.topic).events
        self.events_produced += produced
        return produced

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

    def wait_for_ingested(self, timeout: float = 300) -> float:
        """Seconds until the consumer's accounting counts every event produced so far (cheaper
        than waiting for the marts where they are not the point)."""
        started = time.monotonic()
        if not wait_until(
            lambda: self.accounting()["inserted"] >= self.events_produced, timeout, 0.2
        ):
            raise TimeoutError(
                f"consumer_offsets counts {self.accounting()} of {self.events_produced} events "
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
        if not wait_until(lambda: not active & {r["status"] for r in self.runs()}, timeout, 0.5):
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

    # --- runs driven from outside, as an operator would -----------------------------------
    def _location(self) -> dict[str, str]:
        data = self.server.graphql(
            "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location "
            "{ name } } } } }"
        )
        (repo,) = data["repositoriesOrError"]["nodes"]
        return {"repositoryName": repo["name"], "repositoryLocationName": repo["location"]["name"]}

    def launch_materialization(self, assets: list[str], run_config: dict | None = None) -> str:
        """Materialize ``assets`` as the UI's Materialize button does; returns the run id."""
        data = self.server.graphql(
            """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
                 __typename ... on LaunchRunSuccess { run { runId } }
                 ... on PythonError { message } ... on RunConfigValidationInvalid {
                   errors { message } } } }""",
            {
                "p": {
                    "selector": {
                        **self._location(),
                        "jobName": "__ASSET_JOB",
                        "assetSelection": [{"path": [a]} for a in assets],
                    },
                    "runConfigData": run_config or {},
                }
            },
        )
        result = data["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launchRun: {result}")
        return result["run"]["runId"]

    def terminate(self, run_id: str) -> str:
        """The UI's Terminate button (SIGINT to the run worker, status CANCELING)."""
        data = self.server.graphql(
            "mutation($id: String!) { terminateRun(runId: $id) { __typename } }", {"id": run_id}
        )
        return data["terminateRun"]["__typename"]

    def set_sensor(self, name: str, running: bool) -> None:
        selector = {**self._location(), "sensorName": name}
        if running:
            self.server.graphql(
                "mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename } }",
                {"s": selector},
            )
            return
        data = self.server.graphql(
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor "
            "{ jobOriginId sensorState { selectorId } } } }",
            {"s": selector},
        )
        sensor = data["sensorOrError"]
        self.server.graphql(
            "mutation($o: String, $s: String) { stopSensor(jobOriginId: $o, jobSelectorId: $s) "
            "{ __typename } }",
            {"o": sensor["jobOriginId"], "s": sensor["sensorState"]["selectorId"]},
        )

    def run_status(self, run_id: str) -> str:
        data = self.server.graphql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id}
        )
        return data["runOrError"]["status"]

    def wait_for_status(self, run_id: str, statuses: set[str], timeout: float = 120) -> str:
        if not wait_until(lambda: self.run_status(run_id) in statuses, timeout, 0.5):
            raise TimeoutError(f"run {run_id} is {self.run_status(run_id)}, not {statuses}")
        return self.run_status(run_id)

    def run_events(self, run_id: str) -> list[dict]:
        """The run's whole event log: type, message, step key, timestamp (ms), and each check
        evaluation's asset, name and verdict (paged: the webserver caps a page)."""
        events: list[dict] = []
        cursor = None
        while True:
            data = self.server.graphql(
                """query($id: ID!, $after: String) { logsForRun(runId: $id, afterCursor: $after)
                   { ... on EventConnection { cursor hasMore events { __typename
                     ... on MessageEvent { message timestamp stepKey }
                     ... on AssetCheckEvaluationEvent { evaluation { checkName success
                       assetKey { path } } } } } } }""",
                {"id": run_id, "after": cursor},
            )["logsForRun"]
            events += data["events"]
            if not data["hasMore"] or data["cursor"] == cursor:
                return events
            cursor = data["cursor"]

    def runs_since(self, since: float) -> list[dict]:
        """Runs created at or after ``since`` (epoch s), oldest first, with their record's
        times and tags."""
        data = self.server.graphql(
            """query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results {
                 runId status creationTime startTime endTime tags { key value } } } } }""",
            {"f": {"createdAfter": since}},
        )
        runs = data["runsOrError"]["results"]
        for run in runs:
            run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
        return sorted(runs, key=lambda r: r["creationTime"])

    def tick_of(self, sensor: str, run_id: str, ticks: int = 100) -> float | None:
        """Start (epoch s) of the ``sensor`` tick that requested ``run_id``, or None."""
        data = self.server.graphql(
            """query($s: SensorSelector!, $n: Int) { sensorOrError(sensorSelector: $s) {
                 ... on Sensor { sensorState { ticks(limit: $n) { timestamp runIds } } } } }""",
            {"s": {**self._location(), "sensorName": sensor}, "n": ticks},
        )
        for tick in data["sensorOrError"]["sensorState"]["ticks"]:
            if run_id in tick["runIds"]:
                return float(tick["timestamp"])
        return None

    def worker_pid(self, run_id: str) -> int | None:
        """PID of the run worker, from its "Started process for run (pid: N)" engine event."""
        for event in self.run_events(run_id):
            found = re.search(r"Started process for run \(pid: (\d+)\)", event.get("message", ""))
            if found:
                return int(found.group(1))
        return None

    def step_window(self, run_id: str, step: str) -> tuple[float, float] | None:
        """(start, end) in seconds of ``step`` in the run, or None if it never started."""
        times = {
            e["__typename"]: float(e["timestamp"]) / 1000
            for e in self.run_events(run_id)
            if e.get("stepKey") == step
            and e["__typename"] in {"ExecutionStepStartEvent", "ExecutionStepSuccessEvent",
                                    "ExecutionStepFailureEvent"}
        }  # fmt: skip
        if "ExecutionStepStartEvent" not in times:
            return None
        end = times.get("ExecutionStepSuccessEvent", times.get("ExecutionStepFailureEvent"))
        return times["ExecutionStepStartEvent"], end if end is not None else float("inf")

    def accounting(self) -> dict[str, int]:
        """The consumer's own accounting and the rows it covers, read in one snapshot."""
        query = sql.SQL(
            "select (select coalesce(sum(inserted), 0) from {o})::bigint as inserted,"
            " (select coalesce(sum(duplicates), 0) from {o})::bigint as duplicates,"
            " (select coalesce(sum(rejected), 0) from {o})::bigint as rejected,"
            " (select count(*) from {r})::bigint as rows"
        ).format(
            o=sql.Identifier(self.raw_schema, "consumer_offsets"),
            r=sql.Identifier(self.raw_schema, "raw_orders"),
        )
        try:
            with psycopg.connect(self.base.admin_dsn_for(self.base.pg_database)) as conn:
                inserted, duplicates, rejected, rows = conn.execute(query).fetchone()
        except psycopg.errors.UndefinedTable:  # before the first ingestion creates them
            inserted = duplicates = rejected = rows = 0
        return {"inserted": inserted, "duplicates": duplicates, "rejected": rejected, "rows": rows}

    def full_refresh(self, prefix: str) -> subprocess.CompletedProcess:
        """`dbt build --full-refresh` of this pipeline's raw schema into schemas ``prefix``*."""
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OLIST_")},
            **self.base.dbt_env(),
            "OLIST_RAW_SCHEMA": self.raw_schema,
            "OLIST_SCHEMA_PREFIX": prefix,
        }
        self.prefixes.append(prefix)
        with psycopg.connect(self.base.admin_dsn_for(self.base.pg_database), autocommit=True) as c:
            provision_dbt_schemas(c, self.base, prefix)
        target = self.work_dir / f"target_{prefix}"
        return subprocess.run(
            [str(Path(sys.executable).with_name("dbt")), "build", "--full-refresh",
             "--exclude-resource-type", "unit_test", "--project-dir", str(DBT_PROJECT_DIR),
             "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(target)],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
