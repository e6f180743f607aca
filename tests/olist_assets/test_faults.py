"""Dagster-level faults in-process: an outage fails the run with the one line that names it,
within the retry budget; the pools that keep ingestion and dbt one at a time, whoever starts them."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import yaml

from kafka_io.settings import get_settings
from olist_assets.definitions import defs as load_defs
from olist_assets.defs.ingest.assets import olist_orders_topic, raw_orders
from olist_assets.lib.resources import OlistIngestResource, dbt_pool, ingest_pool
from olist_dev.e2e import free_port
from tests.conftest import REPO_ROOT

defs = load_defs()  # @dg.definitions: loading is a call, not an import

RETRY_SECONDS = 2


def test_postgres_unreachable_fails_the_run_naming_it_within_the_budget(
    settings, pipeline, monkeypatch
):
    port = free_port()  # nothing listens there
    monkeypatch.setenv("OLIST_PG_PORT", str(port))
    monkeypatch.setenv("OLIST_PG_RETRY_SECONDS", str(RETRY_SECONDS))
    resource = OlistIngestResource(
        topic=pipeline.topic, group=pipeline.group, raw_schema=pipeline.raw_schema
    )
    started = time.monotonic()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [olist_orders_topic, raw_orders], resources={"ingest": resource},
            instance=instance, raise_on_error=False,
        )  # fmt: skip
    elapsed = time.monotonic() - started

    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    description = failure.step_failure_data.user_failure_data.description
    assert "PostgreSQL" in description and f"127.0.0.1:{port}" in description, description
    assert "\n" not in description  # one line, not a traceback
    # The bounded retry budget, plus slack for Dagster's own start-up on a busy machine.
    assert elapsed < RETRY_SECONDS + 30, elapsed


def test_pool_names_separate_topics_groups_and_warehouses():
    assert ingest_pool("t", "g") == "olist/ingest/t/g"
    assert len({ingest_pool("t", "g"), ingest_pool("t", "h"), ingest_pool("u", "g")}) == 3
    assert dbt_pool("olist") == "olist/dbt/olist/-"
    assert dbt_pool("olist", "e2e_x_") != dbt_pool("olist")


def test_every_ingesting_and_dbt_step_claims_its_pool():
    s = get_settings()
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("raw_orders")).pools == {ingest_pool(s.kafka_topic, s.kafka_group)}
    warehouse = {dbt_pool(s.pg_database, s.schema_prefix)}
    for name in ["stg_orders", "int_orders_latest", "fact_orders", "dim_customers",
                 "agg_daily_revenue", "dbt_docs"]:  # fmt: skip
        (pool,) = graph.get(dg.AssetKey(name)).pools
        assert pool in warehouse, (name, pool)
    # The daily full-history job runs the same dbt op, so the same pool.
    job = defs.resolve_job_def("dbt_full_history_tests")
    assert {n.definition.pool for n in job.graph.node_dict.values()} <= warehouse


def test_both_instances_limit_every_pool_to_one_slot_and_free_dead_runs_slots():
    for path in (REPO_ROOT / "dagster.yaml", REPO_ROOT / "docker" / "dagster.yaml"):
        config = yaml.safe_load(Path(path).read_text())
        assert config["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}, path
        monitoring = config["run_monitoring"]
        assert monitoring["enabled"] and monitoring["free_slots_after_run_end_seconds"] <= 10
        assert monitoring["poll_interval_seconds"] <= 10
