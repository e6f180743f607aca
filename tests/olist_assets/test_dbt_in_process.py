"""dbt in the run's process (olist_assets/lib/dbt_resource.py) on the real warehouse: the same
events as the dbt subprocess, dbt's exit codes and errors, an interrupt that cancels the running
query, and the daily full-history run after an in-process batch (a dbt subprocess)."""

from __future__ import annotations

import signal
import time

import dagster as dg
import pytest
from dagster_dbt.errors import DagsterDbtCliRuntimeError

from kafka_io.synthetic import synthetic_events
from olist_assets.defs.dbt.assets import olist_dbt_models
from olist_assets.lib import dbt_resource as dbt_resource_module
from olist_assets.lib.dbt_project import DBT_PROJECT_DIR
from olist_assets.lib.dbt_resource import DbtWarmUp, InProcessDbt, dbt_resource
from tests.kafka_io.ingest_helpers import produce_events
from tests.olist_assets.test_pipeline import ASSETS, resources


def listed_models(in_process: bool) -> list[str]:
    invocation = dbt_resource(in_process=in_process).cli(["ls", "--resource-type", "model"])
    events = list(invocation.stream_raw_events())
    assert invocation.process.wait() == 0
    return sorted(
        e.raw_event["info"]["msg"] for e in events if e.raw_event["info"]["name"] == "PrintEvent"
    )


def test_in_process_lists_what_the_subprocess_lists(pipeline):
    resource = dbt_resource()
    assert resource.in_process
    assert isinstance(resource.cli(["ls"]).wait().process, InProcessDbt)
    in_process, subprocess_ = listed_models(True), listed_models(False)
    assert in_process == subprocess_
    assert "olist.marts.agg_daily_revenue" in in_process and len(in_process) >= 7


def test_docs_generate_in_process_writes_the_catalog(settings, pipeline):
    produce_events(settings, pipeline.topic, list(synthetic_events(20, seed=5)))
    assert dg.materialize(ASSETS, resources=resources(pipeline)).success
    # A nested subcommand: dbt's flags must follow `docs generate`, not `docs`.
    invocation = dbt_resource().cli(["docs", "generate"]).wait()
    assert isinstance(invocation.process, InProcessDbt) and invocation.process.returncode == 0
    catalog = invocation.get_artifact("catalog.json")
    assert any(key.endswith(".fact_orders") for key in catalog["nodes"])


def test_only_a_subprocess_invocation_builds_dagster_dbt_s_adapter(pipeline):
    # fetch_row_counts / fetch_column_metadata need it; building it parses every macro.
    assert dbt_resource().cli(["ls"]).wait().adapter is None
    assert dbt_resource(in_process=False).cli(["ls"]).wait().adapter is not None


def test_bad_arguments_exit_2_with_dbt_s_error(pipeline):
    invocation = dbt_resource().cli(["build", "--no-such-flag"], raise_on_error=False)
    assert not invocation.is_successful()
    assert invocation.process.returncode == 2
    with pytest.raises(DagsterDbtCliRuntimeError, match="no-such-flag"):
        dbt_resource().cli(["build", "--no-such-flag"]).wait()


def test_an_interrupt_cancels_the_running_query(pipeline):
    invocation = dbt_resource().cli(
        ["show", "--inline", "select pg_sleep(60) as slept"], raise_on_error=False
    )
    time.sleep(4)  # dbt starts, connects and sends the query
    assert invocation.process.poll() is None, "dbt finished before the query could be cancelled"
    started = time.monotonic()
    invocation.process.send_signal(signal.SIGINT)
    assert invocation.process.wait(timeout=20) in (1, 2)  # a failed node, or an error
    assert time.monotonic() - started < 20
    assert not invocation.is_successful()
    # dbt-postgres cancels by terminating the query's backend: the node fails with its error.
    errors = invocation._error_messages
    assert any("Database Error" in m and "inline_query" in m for m in errors), errors


def test_the_daily_run_after_an_in_process_batch_runs_every_test(settings, pipeline):
    # (Its row counts and column schemas name the relations of the code location's manifest,
    # parsed for the default schema prefix, not this test's: they are not asserted here.)
    events = list(synthetic_events(150, seed=21))
    produce_events(settings, pipeline.topic, events)
    with dg.DagsterInstance.ephemeral() as instance:
        batch = dg.materialize(ASSETS, resources=resources(pipeline), instance=instance)
        daily = dg.materialize(
            [*ASSETS[:1], olist_dbt_models],
            selection=dg.AssetSelection.assets(olist_dbt_models),
            resources=resources(pipeline),
            instance=instance,
            run_config={"ops": {"olist_dbt_models": {"config": {"full_history_tests": True}}}},
        )
    assert batch.success and daily.success
    batch_checks = batch.get_asset_check_evaluations()
    daily_checks = daily.get_asset_check_evaluations()
    assert daily_checks and all(c.passed for c in daily_checks)
    # The daily run tests whole tables with every data test, as the batch's scoped ones.
    dbt_checks = {c.check_name for c in batch_checks} - {"offsets_reconcile", "no_new_dead_letters"}
    assert dbt_checks and dbt_checks <= {c.check_name for c in daily_checks}
    models = {
        m.asset_key.to_user_string()
        for m in daily.asset_materializations_for_node("olist_dbt_models")
    }
    assert {"fact_orders", "dim_customers", "agg_daily_revenue"} <= models


def test_the_warm_up_parses_once_and_leaves_the_project_s_target_alone(pipeline):
    target = DBT_PROJECT_DIR / "target"
    before = {p.name: p.stat().st_mtime_ns for p in target.iterdir() if p.is_file()}
    warm = DbtWarmUp()
    warm.start(DBT_PROJECT_DIR, DBT_PROJECT_DIR, "dev")
    thread = warm._thread
    warm.start(DBT_PROJECT_DIR, DBT_PROJECT_DIR, "dev")
    assert warm._thread is thread  # one per process
    warm.wait()
    assert warm.succeeded is True
    assert {p.name: p.stat().st_mtime_ns for p in target.iterdir() if p.is_file()} == before


def test_a_run_s_dbt_command_starts_after_the_warm_up_ends(pipeline, monkeypatch):
    warm = DbtWarmUp()
    monkeypatch.setattr(dbt_resource_module, "WARM_UP", warm)
    resource = dbt_resource()
    resource.setup_for_execution(dg.build_init_resource_context())
    assert warm._thread is not None  # set-up started it
    invocation = resource.cli(["ls"]).wait()
    assert invocation.process.returncode == 0 and warm.succeeded is True
    assert warm.finished_at is not None and warm.finished_at <= invocation.process.started_at
    # A subprocess resource does not warm this process up.
    cold = DbtWarmUp()
    monkeypatch.setattr(dbt_resource_module, "WARM_UP", cold)
    dbt_resource(in_process=False).setup_for_execution(dg.build_init_resource_context())
    assert cold._thread is None
