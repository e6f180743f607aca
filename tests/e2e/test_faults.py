"""Dagster-level faults on the real webserver + daemon (one `dagster dev` for the module): a run
terminated from the UI ends CANCELED at a batch boundary, a killed run worker ends FAILURE and
the rest follows, a worker killed mid-`dbt build` leaves marts equal to a full refresh, and a
manual run beside the sensor's never ingests at the same time. Exactly-once is read from the
consumer's own accounting (raw.consumer_offsets), not only from the primary key.

About 1000 orders per fault, and the tests wait on the consumer's accounting and on run
statuses; only the mid-dbt test, where the marts are the point, waits for the marts."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from olist_dev.e2e import E2EPipeline, kill_tree, poll_for
from olist_dev.stack.common import wait_until

LAG_SENSOR = "kafka_lag_sensor"
AUTOMATION_SENSOR = "olist_automation_sensor"
SENSOR_TAG = {"key": "dagster/sensor_name", "value": LAG_SENSOR}
DBT_STEP = "olist_dbt_models"
ORDERS = 1000
# Tiny transactions stretch an ingestion of ~3500 events over hundreds of batches, long enough
# to terminate or kill it in the middle.
SLOW_INGEST = {"resources": {"ingest": {"config": {"max_batch": 5}}}}
MARTS = [("staging", "int_orders_latest"), ("analytics", "fact_orders"),
         ("analytics", "dim_customers"), ("analytics", "agg_daily_revenue")]  # fmt: skip
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


@pytest.fixture(scope="module")
def e2e(settings, tmp_path_factory):
    with E2EPipeline(settings, tmp_path_factory.mktemp("e2e_faults")) as pipeline:
        # Declarative automation is not under test here (tests/e2e/test_daemon.py covers it);
        # its runs (docs, eager dbt after a manual raw_orders) would only lengthen every wait.
        # The killed dbt build is rebuilt by the daemon's run retry.
        pipeline.set_sensor(AUTOMATION_SENSOR, running=False)
        yield pipeline


@pytest.fixture
def settled(e2e):
    """Each fault starts and ends with no run in progress, so the next one sees only its own."""
    e2e.wait_for_idle()
    yield e2e
    e2e.wait_for_idle()


def assert_exactly_once(e2e: E2EPipeline) -> None:
    produced = e2e.events_produced
    books = e2e.accounting()
    assert books == {"inserted": produced, "duplicates": 0, "rejected": 0,
                     "rows": produced}, books  # fmt: skip


def start_slow_ingestion(e2e: E2EPipeline) -> tuple[str, int]:
    """A manual raw_orders run, once it has committed some batches (and holds the pool)."""
    before = e2e.accounting()["inserted"]
    run_id = e2e.launch_materialization(["raw_orders"], SLOW_INGEST)
    assert wait_until(lambda: e2e.accounting()["inserted"] > before, 180, 0.1), run_id
    return run_id, before


def new_runs(e2e: E2EPipeline, seen: set[str]) -> list[dict]:
    return [r for r in e2e.runs() if r["runId"] not in seen]


def test_terminated_run_ends_canceled_at_a_batch_boundary_and_the_rest_follows(settled):
    e2e = settled
    e2e.set_sensor(LAG_SENSOR, running=False)  # the manual run alone ingests
    e2e.produce(ORDERS, seed=201)
    run_id, _ = start_slow_ingestion(e2e)

    assert e2e.terminate(run_id) == "TerminateRunSuccess"
    assert e2e.wait_for_status(run_id, FINISHED, timeout=120) == "CANCELED"
    books = e2e.accounting()
    # Stopped in the middle, and every committed batch is accounted for: rows == inserted.
    assert 0 < books["inserted"] < e2e.events_produced, books
    assert books["rows"] == books["inserted"] and books["duplicates"] == 0, books

    e2e.set_sensor(LAG_SENSOR, running=True)  # the sensor's run ingests the rest
    e2e.wait_for_ingested(timeout=180)
    assert_exactly_once(e2e)


def test_killed_ingestion_worker_fails_and_the_rest_is_ingested_exactly_once(settled):
    e2e = settled
    e2e.set_sensor(LAG_SENSOR, running=False)
    e2e.produce(ORDERS, seed=202)
    run_id, before = start_slow_ingestion(e2e)
    pid = e2e.worker_pid(run_id)
    assert pid, "no worker pid in the run's events"

    kill_tree(pid)
    assert e2e.wait_for_status(run_id, FINISHED, timeout=60) == "FAILURE"
    assert before < e2e.accounting()["inserted"] < e2e.events_produced
    # Run monitoring frees its pool slot and the daemon retries the run (run_retries), which
    # ingests the rest from the offsets PostgreSQL holds; the sensor stays off meanwhile.
    retry = poll_for(lambda: retry_of(e2e, run_id), timeout=120)
    assert retry, f"no retry of {run_id}"
    assert e2e.wait_for_status(retry, FINISHED, timeout=180) == "SUCCESS", retry
    e2e.wait_for_ingested(timeout=30)
    assert_exactly_once(e2e)


def retry_of(e2e: E2EPipeline, run_id: str) -> str | None:
    parent = {"key": "dagster/parent_run_id", "value": run_id}
    return next((r["runId"] for r in e2e.runs() if parent in r["tags"]), None)


def dbt_step_running(e2e: E2EPipeline, seen: set[str]) -> str | None:
    for run in new_runs(e2e, seen):
        if run["status"] == "STARTED":
            window = e2e.step_window(run["runId"], DBT_STEP)
            if window and window[1] == float("inf"):
                return run["runId"]
    return None


def public_columns(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    """The model's columns without its bookkeeping ones (`_build_seq`, the number of the build
    that wrote a row, differs between incremental builds and one full refresh by design)."""
    rows = conn.execute(
        "select column_name from information_schema.columns where table_schema = %s"
        " and table_name = %s and column_name not like '\\_%%' order by ordinal_position",
        (schema, table),
    ).fetchall()
    return [name for (name,) in rows]


def mart_difference(e2e: E2EPipeline, layer: str, name: str, other_prefix: str) -> int:
    """Rows in one build of the model and not the other, both ways (multiset difference)."""
    with psycopg.connect(e2e.base.admin_dsn_for(e2e.base.pg_database)) as conn:
        columns = public_columns(conn, e2e.prefix + layer, name)
        assert columns, f"{e2e.prefix + layer}.{name} has no columns"
        listed = sql.SQL(", ").join(map(sql.Identifier, columns))
        a, b = (
            sql.SQL("select {} from {}").format(listed, sql.Identifier(prefix + layer, name))
            for prefix in (e2e.prefix, other_prefix)
        )
        query = sql.SQL(
            "select (select count(*) from ({a} except all {b}) d)"
            " + (select count(*) from ({b} except all {a}) d)"
        ).format(a=a, b=b)
        return conn.execute(query).fetchone()[0]


def test_worker_killed_mid_dbt_build_then_the_marts_equal_a_full_refresh(settled):
    e2e = settled
    seen = {r["runId"] for r in e2e.runs()}
    e2e.set_sensor(LAG_SENSOR, running=True)
    e2e.produce(ORDERS, seed=203)  # the sensor's run ingests it, then builds
    run_id = poll_for(lambda: dbt_step_running(e2e, seen), timeout=180)
    assert run_id, "no run reached its dbt step"
    killed = kill_tree(e2e.worker_pid(run_id))  # the worker and the dbt it runs
    assert len(killed) > 1, killed  # dbt was running below the worker
    assert e2e.wait_for_status(run_id, FINISHED, timeout=60) == "FAILURE"

    e2e.wait_for_marts(timeout=300)  # the daemon's retry of the run rebuilds
    e2e.wait_for_idle()
    assert_exactly_once(e2e)
    fresh = e2e.prefix + "fr_"
    build = e2e.full_refresh(fresh)
    assert build.returncode == 0, build.stdout[-3000:]
    differences = {name: mart_difference(e2e, layer, name, fresh) for layer, name in MARTS}
    assert differences == dict.fromkeys(differences, 0), differences


def test_manual_and_sensor_runs_at_once_never_ingest_concurrently(settled):
    e2e = settled
    seen = {r["runId"] for r in e2e.runs()}
    e2e.set_sensor(LAG_SENSOR, running=False)
    e2e.produce(ORDERS, seed=204)
    e2e.set_sensor(LAG_SENSOR, running=True)
    # The sensor requests its run as soon as it sees the lag; the manual run is launched right
    # then, before either has started, so both go for the ingestion pool at the same time.
    assert wait_until(lambda: any(SENSOR_TAG in r["tags"] for r in new_runs(e2e, seen)), 60, 0.2)
    manual = e2e.launch_materialization(["raw_orders"], SLOW_INGEST)
    (by_sensor,) = [r["runId"] for r in new_runs(e2e, seen) if SENSOR_TAG in r["tags"]]
    for run_id in (manual, by_sensor):
        assert e2e.wait_for_status(run_id, FINISHED, timeout=240) == "SUCCESS", run_id
    e2e.wait_for_ingested(timeout=60)
    assert_exactly_once(e2e)

    windows = {run_id: e2e.step_window(run_id, "raw_orders") for run_id in (manual, by_sensor)}
    assert all(windows.values()), windows  # both paths really ran their raw_orders step
    (a, wa), (b, wb) = windows.items()
    assert wa[1] <= wb[0] or wb[1] <= wa[0], f"raw_orders of {a} and {b} overlap: {windows}"
