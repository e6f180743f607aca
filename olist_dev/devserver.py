"""Start and stop `dagster dev` (webserver + daemon) in the background, for the end-to-end test
and the latency benchmark (olist_dev/background.py: own session, stopped by its process group,
never by name); ready once the code location has loaded."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from olist_dev.background import BackgroundServer
from olist_dev.settings import REPO_ROOT


class DagsterDev(BackgroundServer):
    name = "dagster dev"

    def __init__(self, env: dict[str, str], port: int, log_path: Path):
        argv = ["dagster", "dev", "-w", str(REPO_ROOT / "workspace.yaml"),
                "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
        super().__init__(argv, env, port, log_path)

    def start(self, timeout: float = 180) -> DagsterDev:
        super().start(timeout)
        return self

    def healthy(self) -> bool:
        """The webserver answers and every code location loaded (not merely the HTTP port)."""
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
        running = self.proc is not None and self.proc.poll() is None
        super().stop(timeout)
        if running:
            time.sleep(0.5)  # the group's last connections close before its database is dropped
