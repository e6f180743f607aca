"""The code location loads, and its graph is the one DESIGN.md names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg

from olist_assets.definitions import defs as load_defs
from olist_dev.instance import dagster_env
from tests.conftest import REPO_ROOT

defs = load_defs()  # @dg.definitions: loading is a call, not an import

CHAIN = ["olist_orders_topic", "raw_orders", "stg_orders", "fact_orders", "agg_daily_revenue"]


def test_dg_check_defs_passes(settings):
    # The dg project ([tool.dg] in pyproject.toml) loads as `dg` and Dagster+ would load it.
    dg_cli = str(Path(sys.executable).with_name("dg"))
    result = subprocess.run(
        [dg_cli, "check", "defs", "--use-active-venv"],
        cwd=REPO_ROOT, env=dagster_env(settings), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_workspace_yaml_loads_the_same_code_location(settings):
    # workspace.yaml stays for docker/ and `dagster dev`.
    dagster = str(Path(sys.executable).with_name("dagster"))
    result = subprocess.run(
        [dagster, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT, env=dagster_env(settings), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_every_asset_has_an_owner_and_the_served_ones_a_freshness_policy():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert graph.get(key).owners == ["team:olist-data-platform"], key
    fresh = {
        k.to_user_string()
        for k in graph.get_all_asset_keys()
        if graph.get(k).freshness_policy is not None
    }
    assert fresh == {"raw_orders", "fact_orders", "dim_customers", "agg_daily_revenue"}


def test_offsets_reconcile_blocks_the_models_downstream():
    graph = defs.resolve_asset_graph()
    checks = {
        k.name: graph.get_check_spec(k) for k in graph.get(dg.AssetKey("raw_orders")).check_keys
    }
    assert checks["offsets_reconcile"].blocking
    assert not checks["no_new_dead_letters"].blocking


def test_one_lineage_graph_from_topic_to_marts():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert set(CHAIN) | {"dim_customers"} <= keys
    for upstream, downstream in zip(CHAIN, CHAIN[1:], strict=False):
        ancestors = graph.get(dg.AssetKey(downstream)).parent_keys
        assert dg.AssetKey(upstream) in ancestors or any(
            dg.AssetKey(upstream) in graph.get(a).parent_keys for a in ancestors
        ), f"{upstream} is not upstream of {downstream}"
    assert dg.AssetKey("fact_orders") in graph.get(dg.AssetKey("dim_customers")).parent_keys
    assert graph.get(dg.AssetKey("olist_orders_topic")).kinds == {"kafka"}


def test_every_model_and_raw_orders_has_checks():
    graph = defs.resolve_asset_graph()
    for name in ["raw_orders", "stg_orders", "fact_orders", "dim_customers", "agg_daily_revenue"]:
        checks = {k.name for k in graph.get(dg.AssetKey(name)).check_keys}
        assert checks, f"{name} has no asset checks"
    raw_checks = {k.name for k in graph.get(dg.AssetKey("raw_orders")).check_keys}
    assert raw_checks == {"no_new_dead_letters", "offsets_reconcile"}


def test_dbt_models_follow_automatically_and_sensors_are_on():
    graph = defs.resolve_asset_graph()
    for name in ["stg_orders", "fact_orders", "dim_customers", "agg_daily_revenue", "dbt_docs"]:
        assert graph.get(dg.AssetKey(name)).automation_condition is not None, name
    sensors = {s.name: s for s in defs.sensors}
    assert sensors["kafka_lag_sensor"].default_status == dg.DefaultSensorStatus.RUNNING
    assert sensors["olist_automation_sensor"].default_status == dg.DefaultSensorStatus.RUNNING
