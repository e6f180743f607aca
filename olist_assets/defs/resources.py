"""The resources every run gets, and the executor."""

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from olist_assets.lib.dbt_project import dbt_project
from olist_assets.lib.resources import OlistIngestResource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "ingest": OlistIngestResource(),
            # The dbt of this venv, whatever PATH says (dagster may run outside a venv).
            "dbt": DbtCliResource(
                project_dir=dbt_project, dbt_executable=str(Path(sys.executable).with_name("dbt"))
            ),
        },
        # One process per run, steps in it: a subprocess per step would re-import Dagster and
        # dbt for each of them, which dominates the latency of a small ingestion run.
        executor=dg.in_process_executor,
    )
