"""The one owner of the dbt project object. Importing it does no work: the manifest is prepared
by `make setup` (dagster-dbt project prepare-and-package), by the Docker image's `dbt parse`, or
under `dagster dev` by `definitions.py` (`prepare_if_dev`)."""

from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target="dev")
