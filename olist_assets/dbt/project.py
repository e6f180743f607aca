"""The one owner of the dbt project object. Nothing parses dbt at import time: the manifest is
prepared by `make setup` (dagster-dbt project prepare-and-package) or by `dagster dev`."""

from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target="dev")
dbt_project.prepare_if_dev()
