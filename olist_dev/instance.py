"""The Dagster instance of the local stack: DAGSTER_HOME under .stack/, storage in PostgreSQL."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from olist_dev.settings import REPO_ROOT, StackSettings


def dagster_home(settings: StackSettings) -> Path:
    return settings.stack_dir / "dagster"


def dagster_env(settings: StackSettings) -> dict[str, str]:
    """Environment for dagster processes: DAGSTER_HOME plus what dagster.yaml and dbt read.

    Also prepares DAGSTER_HOME with the repo's dagster.yaml (copied, so edits apply next start).
    """
    home = dagster_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        # dagster.yaml's storage, and dbt/profiles.yml for the dbt runs of the code location.
        **settings.dagster_storage_env(),
        **settings.dbt_env(),
    }
