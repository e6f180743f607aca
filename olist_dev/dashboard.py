"""Serve the dashboard (olist_dashboard/app.py) with Streamlit: `olist dashboard` in the
foreground, `DashboardServer` in the background for the browser tests (olist_dev/background.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from olist_dev.background import BackgroundServer
from olist_dev.settings import REPO_ROOT

APP = REPO_ROOT / "olist_dashboard" / "app.py"


def streamlit_argv(host: str, port: int) -> list[str]:
    """`streamlit run` of the app: headless (no browser opened), no usage statistics, no file
    watcher (the code does not change under a running server), no developer menu."""
    streamlit = str(Path(sys.executable).with_name("streamlit"))
    return [
        streamlit, "run", str(APP),
        f"--server.address={host}", f"--server.port={port}",
        "--server.headless=true", "--server.fileWatcherType=none",
        "--browser.gatherUsageStats=false", "--client.toolbarMode=viewer",
    ]  # fmt: skip


class DashboardServer(BackgroundServer):
    name = "the dashboard"
    ready_path = "/_stcore/health"

    def __init__(self, env: dict[str, str], port: int, log_path: Path):
        super().__init__(streamlit_argv("127.0.0.1", port), env, port, log_path)
