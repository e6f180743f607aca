"""The code location: every definition under `olist_assets/defs/`, one folder per concern.

Nothing to list by hand: `load_from_defs_folder` finds the assets, checks, sensors, jobs,
schedules and resources in the modules of `defs/` (`[tool.dg]` in pyproject.toml)."""

import multiprocessing
from pathlib import Path

import dagster as dg

from olist_assets.lib.dbt_project import dbt_project

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # holds pyproject.toml ([tool.dg])


@dg.definitions
def defs() -> dg.Definitions:
    # Under `dagster dev` / `dg dev` only: re-parse the dbt project when it changed. Elsewhere
    # the manifest is built ahead (make setup, the Docker image), so loading never parses dbt.
    # Not in a run worker: the code server spawns it (multiprocessing) with DAGSTER_IS_DEV_CLI
    # inherited, and has just prepared the manifest; a `dbt parse` per run cost ~2-3 s of
    # every run's start-up.
    if multiprocessing.parent_process() is None:
        dbt_project.prepare_if_dev()
    return dg.load_from_defs_folder(path_within_project=PROJECT_ROOT)
