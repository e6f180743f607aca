"""The code location: assembles each concern's definitions, nothing else."""

import dagster as dg

from olist_assets import automation, dbt, ingest
from olist_assets.resources import OlistIngestResource

defs = dg.Definitions.merge(
    ingest.defs,
    dbt.defs,
    automation.defs,
    dg.Definitions(resources={"ingest": OlistIngestResource()}),
)
