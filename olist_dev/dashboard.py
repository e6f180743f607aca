"""Serve the dashboard (olist_dashboard/app.py) with Streamlit: `olist dashboard` in the
foreground, `DashboardServer` in the background for the browser tests (its own session, stopped
by its PID, never by name)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from olist_dev.settings import REPO_ROOT
from olist_dev.stack.common import default_signals, wait_until

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


class DashboardServer:
    def __init__(self, env: dict[str, str], port: int, log_path: Path):
        self.env, self.port, self.log_path = env, port, log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/_stcore/health", timeout=2).ok
        except requests.RequestException:
            return False

    def start(self, timeout: float = 60) -> DashboardServer:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            streamlit_argv("127.0.0.1", self.port), env=self.env, cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=default_signals,
        )  # fmt: skip
        if not wait_until(lambda: self.proc.poll() is not None or self.healthy(), timeout, 0.5):
            self.stop()
            raise RuntimeError(f"the dashboard did not start in {timeout}s; see {self.log_path}")
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"the dashboard exited ({self.proc.returncode}); see {self.log_path}"
            )
        return self

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
