"""A server command run in the background for a test or a benchmark: its own session with
default signal handlers, ready when an HTTP path on its 127.0.0.1 port answers, stopped by its
process group (itself and its children), never by name."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import requests

from olist_dev.settings import REPO_ROOT
from olist_dev.stack.common import default_signals, wait_until


class BackgroundServer:
    name = "the server"
    ready_path = "/"

    def __init__(self, argv: Sequence[str], env: dict[str, str], port: int, log_path: Path):
        self.argv, self.env, self.port, self.log_path = list(argv), env, port, log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}{self.ready_path}", timeout=2).ok
        except requests.RequestException:
            return False

    def start(self, timeout: float = 60) -> BackgroundServer:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=default_signals,
        )  # fmt: skip
        if not wait_until(lambda: self.proc.poll() is not None or self.healthy(), timeout, 0.5):
            self.stop()
            raise RuntimeError(f"{self.name} did not start in {timeout}s; see {self.log_path}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log_path}")
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

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
