"""The resources every run gets, and the executor."""

import importlib.metadata
import sys
from functools import cached_property
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource
from packaging import version

from olist_assets.lib.dbt_project import dbt_project
from olist_assets.lib.resources import OlistIngestResource


class VenvDbtCliResource(DbtCliResource):
    """DbtCliResource for the dbt of this venv. dagster-dbt learns the dbt version by running
    `dbt --version` once per resource, i.e. once per run: a second dbt process start (1.5-2.7 s
    measured) before every batch's build. The executable is this venv's, so its version is the
    installed dbt-core's."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "ingest": OlistIngestResource(),
            # The dbt of this venv, whatever PATH says (dagster may run outside a venv).
            "dbt": VenvDbtCliResource(
                project_dir=dbt_project, dbt_executable=str(Path(sys.executable).with_name("dbt"))
            ),
        },
        # One process per run, steps in it: a subprocess per step would re-import Dagster and
        # dbt for each of them, which dominates the latency of a small ingestion run.
        executor=dg.in_process_executor,
    )
