"""The code location: assembles each concern's definitions, nothing else."""

import dagster as dg

from olist_assets import automation, dbt, ingest
from olist_assets.resources import OlistIngestResource

defs = dg.Definitions.merge(
    ingest.defs,
    dbt.defs,
    automation.defs,
    # One process per run, steps in it: a subprocess per step would re-import Dagster and
    # dbt for each of them, which dominates the latency of a small ingestion run.
    dg.Definitions(resources={"ingest": OlistIngestResource()}, executor=dg.in_process_executor),
)
