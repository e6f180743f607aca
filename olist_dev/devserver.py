"""Start and stop `dagster dev` (webserver + daemon) in the background, for the end-to-end test
and the latency benchmark. Started in its own session with default signal handlers; stopped by
its PID (its process group), never by name."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from olist_dev.settings import REPO_ROOT
from olist_dev.stack.common import default_signals, wait_until


class DagsterDev:
    def __init__(self, env: dict[str, str], port: int, log_path: Path):
        self.env, self.port, self.log_path = env, port, log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> DagsterDev:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            ["dagster", "dev", "-w", str(REPO_ROOT / "workspace.yaml"),
             "-h", "127.0.0.1", "-p", str(self.port)],
            env=self.env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=default_signals,
        )  # fmt: skip
        if not wait_until(lambda: self.proc.poll() is not None or self._loaded(), timeout, 1.0):
            self.stop()
            raise RuntimeError(f"dagster dev did not load in {timeout}s; see {self.log_path}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited ({self.proc.returncode}); see {self.log_path}")
        return self

    def _loaded(self) -> bool:
        try:
            data = self.graphql(
                "{ workspaceOrError { ... on Workspace { locationEntries { "
                "locationOrLoadError { __typename } } } } }"
            )
        except (requests.RequestException, RuntimeError):
            return False
        entries = data["workspaceOrError"].get("locationEntries", [])
        return bool(entries) and all(
            e["locationOrLoadError"]
            and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
            for e in entries
        )

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=10
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]

    def stop(self, timeout: float = 60) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # SIGTERM to our session's process group: dagster dev, its webserver, daemon and runs.
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        time.sleep(0.5)

    def __enter__(self) -> DagsterDev:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
