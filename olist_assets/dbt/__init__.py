"""dbt: every model of `dbt/` as an asset (dbt build → tests as asset checks), and the docs."""

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from olist_assets.dbt.assets import (
    dbt_docs,
    full_history_tests_job,
    full_history_tests_schedule,
    olist_dbt_models,
)
from olist_assets.dbt.project import dbt_project

defs = dg.Definitions(
    assets=[olist_dbt_models, dbt_docs],
    jobs=[full_history_tests_job],
    schedules=[full_history_tests_schedule],
    # The dbt of this venv, whatever PATH says (dagster may run outside an activated venv).
    resources={
        "dbt": DbtCliResource(
            project_dir=dbt_project, dbt_executable=str(Path(sys.executable).with_name("dbt"))
        )
    },
)
