"""What each kind of run asks dbt to do, and the schedule of the full-history tests."""

from __future__ import annotations

import json

import dagster as dg

from olist_assets.definitions import defs as load_defs
from olist_assets.defs.dbt.assets import dbt_build_args

defs = load_defs()  # @dg.definitions: loading is a call, not an import


def test_per_batch_build_skips_unit_tests_and_keeps_the_project_scope():
    assert dbt_build_args() == ["build", "--exclude-resource-type", "unit_test"]


def test_full_history_build_runs_everything_over_whole_tables():
    args = dbt_build_args(full_history_tests=True)
    assert args[:2] == ["build", "--vars"]
    assert json.loads(args[2]) == {"full_history_tests": True}
    assert "--exclude-resource-type" not in args


def test_full_history_tests_run_daily_by_default():
    schedule = defs.resolve_schedule_def("dbt_full_history_tests_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.cron_schedule == "30 3 * * *"
    assert schedule.job_name == "dbt_full_history_tests"
