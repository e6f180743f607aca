"""Dagster-level faults on the real webserver + daemon (one `dagster dev` for the module): a run
terminated from the UI ends CANCELED at a batch boundary, a killed run worker ends FAILURE and
the rest follows, a worker killed mid-`dbt build` leaves marts equal to a full refresh, and a
manual run beside the sensor's never ingests at the same time. Exactly-once is read from the
consumer's own accounting (raw.consumer_offsets), not only from the primary key."""

from __future__ import annotations

import itertools
import time

import psycopg
import pytest
from psycopg import sql

from olist_dev.e2e import E2EPipeline, kill_tree
from olist_dev.stack.common import wait_until

LAG_SENSOR = "kafka_lag_sensor"
DBT_STEP = "olist_dbt_models"
# Small transactions make an ingestion long enough to terminate or kill in the middle.
SLOW_INGEST = {"resources": {"ingest": {"config": {"max_batch": 50}}}}
MARTS = [("staging", "int_orders_latest"), ("analytics", "fact_orders"),
         ("analytics", "dim_customers"), ("analytics", "agg_daily_revenue")]  # fmt: skip
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


@pytest.fixture(scope="module")
def e2e(settings, tmp_path_factory):
    with E2EPipeline(settings, tmp_path_factory.mktemp("e2e_faults")) as pipeline:
        yield pipeline


def produce(e2e: E2EPipeline, orders: int, seed: int) -> int:
    e2e.produced = getattr(e2e, "produced", 0) + e2e.produce(orders, seed=seed)
    return e2e.produced


def assert_exactly_once(e2e: E2EPipeline) -> None:
    books = e2e.accounting()
    assert books == {"inserted": e2e.produced, "duplicates": 0, "rejected": 0,
                     "rows": e2e.produced}, books  # fmt: skip


def start_slow_ingestion(e2e: E2EPipeline) -> tuple[str, int]:
    """A manual raw_orders run, once it has committed some batches (and holds the pool)."""
    before = e2e.accounting()["inserted"]
    run_id = e2e.launch_materialization(["raw_orders"], SLOW_INGEST)
    assert wait_until(lambda: e2e.accounting()["inserted"] > before, 180, 0.2), run_id
    return run_id, before


def test_terminated_run_ends_canceled_at_a_batch_boundary_and_the_rest_follows(e2e):
    e2e.set_sensor(LAG_SENSOR, running=False)  # the manual run alone ingests
    produced = produce(e2e, 3000, seed=201)
    run_id, _ = start_slow_ingestion(e2e)

    assert e2e.terminate(run_id) == "TerminateRunSuccess"
    assert e2e.wait_for_status(run_id, FINISHED, timeout=120) == "CANCELED"
    books = e2e.accounting()
    # Stopped in the middle, and every committed batch is accounted for: rows == inserted.
    assert 0 < books["inserted"] < produced, books
    assert books["rows"] == books["inserted"] and books["duplicates"] == 0, books

    e2e.set_sensor(LAG_SENSOR, running=True)  # the sensor's run completes the rest
    e2e.wait_for_marts(timeout=300)
    e2e.wait_for_idle()
    assert_exactly_once(e2e)


def test_killed_ingestion_worker_fails_and_the_rest_is_ingested_exactly_once(e2e):
    e2e.set_sensor(LAG_SENSOR, running=False)
    produced = produce(e2e, 3000, seed=202)
    run_id, before = start_slow_ingestion(e2e)
    pid = e2e.worker_pid(run_id)
    assert pid, "no worker pid in the run's events"

    kill_tree(pid)
    assert e2e.wait_for_status(run_id, FINISHED, timeout=60) == "FAILURE"
    assert before < e2e.accounting()["inserted"] < produced
    # Its pool slot is freed by run monitoring; a retry or the sensor's run ingests the rest.
    e2e.set_sensor(LAG_SENSOR, running=True)
    e2e.wait_for_marts(timeout=300)
    e2e.wait_for_idle()
    assert_exactly_once(e2e)


def dbt_step_running(e2e: E2EPipeline, seen: set[str]) -> str | None:
    for run in e2e.runs():
        if run["runId"] not in seen and run["status"] == "STARTED":
            window = e2e.step_window(run["runId"], DBT_STEP)
            if window and window[1] == float("inf"):
                return run["runId"]
    return None


def mart_difference(e2e: E2EPipeline, layer: str, name: str, other_prefix: str) -> int:
    a = sql.Identifier(e2e.prefix + layer, name)
    b = sql.Identifier(other_prefix + layer, name)
    query = sql.SQL(
        "select (select count(*) from (select * from {a} except all select * from {b}) d)"
        " + (select count(*) from (select * from {b} except all select * from {a}) d)"
    ).format(a=a, b=b)
    with psycopg.connect(e2e.base.admin_dsn_for(e2e.base.pg_database)) as conn:
        return conn.execute(query).fetchone()[0]


def test_worker_killed_mid_dbt_build_then_the_marts_equal_a_full_refresh(e2e):
    seen = {r["runId"] for r in e2e.runs()}
    produce(e2e, 300, seed=203)
    run_id = None
    deadline = time.monotonic() + 180
    while run_id is None and time.monotonic() < deadline:
        run_id = dbt_step_running(e2e, seen)
        time.sleep(0.2)
    assert run_id, "no run reached its dbt step"
    kill_tree(e2e.worker_pid(run_id))  # the worker and the dbt it runs
    assert e2e.wait_for_status(run_id, FINISHED, timeout=60) == "FAILURE"

    e2e.wait_for_marts(timeout=300)  # the daemon's retry (or automation) rebuilds
    e2e.wait_for_idle()
    assert_exactly_once(e2e)
    fresh = e2e.prefix + "fr_"
    build = e2e.full_refresh(fresh)
    assert build.returncode == 0, build.stdout[-3000:]
    for layer, name in MARTS:
        assert mart_difference(e2e, layer, name, fresh) == 0, name


def test_manual_and_sensor_runs_at_once_never_ingest_concurrently(e2e):
    seen = {r["runId"] for r in e2e.runs()}
    produce(e2e, 2000, seed=204)
    manual = e2e.launch_materialization(["raw_orders"], SLOW_INGEST)
    e2e.wait_for_marts(timeout=300)
    e2e.wait_for_idle()
    assert_exactly_once(e2e)

    new = [r for r in e2e.runs() if r["runId"] not in seen]
    by_sensor = [
        r["runId"] for r in new
        if {"key": "dagster/sensor_name", "value": LAG_SENSOR} in r["tags"]
    ]  # fmt: skip
    windows = {run_id: e2e.step_window(run_id, "raw_orders") for run_id in [manual, *by_sensor]}
    ingested = {run_id: w for run_id, w in windows.items() if w}
    assert manual in ingested and len(ingested) >= 2, windows  # both really ran raw_orders
    for (a, wa), (b, wb) in itertools.combinations(ingested.items(), 2):
        assert wa[1] <= wb[0] or wb[1] <= wa[0], f"raw_orders of {a} and {b} overlap"
    assert e2e.run_status(manual) == "SUCCESS"
