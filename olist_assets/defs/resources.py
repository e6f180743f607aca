"""The resources every run gets, and the executor."""

import dagster as dg

from olist_assets.lib.dbt_resource import dbt_resource
from olist_assets.lib.resources import OlistIngestResource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "ingest": OlistIngestResource(),
            # This venv's dbt, run in the run's process (olist_assets/lib/dbt_resource.py).
            "dbt": dbt_resource(),
        },
        # One process per run, steps in it: a subprocess per step would re-import Dagster and
        # dbt for each of them, which dominates the latency of a small ingestion run.
        executor=dg.in_process_executor,
    )
