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
    """Environment for dagster processes: DAGSTER_HOME plus every OLIST_* that dagster.yaml reads.

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
        "OLIST_PG_HOST": settings.pg_host,
        "OLIST_PG_PORT": str(settings.pg_port),
        "OLIST_DAGSTER_PG_DATABASE": settings.dagster_pg_database,
        "OLIST_DAGSTER_PG_USER": settings.dagster_pg_user,
        "OLIST_DAGSTER_PG_PASSWORD": settings.dagster_pg_password,
    }
