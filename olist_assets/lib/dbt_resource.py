"""The dbt resource of every run: dagster-dbt's `DbtCliResource`, with dbt running in the run's
own process (dbt's documented `dbtRunner`) instead of a `dbt` subprocess.

Why: a `dbt build` subprocess starts a Python interpreter, imports dbt and loads the project
before the first node runs. Measured on a per-batch build of 23 nodes that dbt itself times at
about 2 s: 7.7-9.0 s from the CLI, 3.4-4.2 s in process (measured side by side). The run worker
has already imported most of dbt (dagster-dbt does), so in process that start-up is mostly gone.

What stays dagster-dbt's: the arguments (selection, target path, partial-parse state), the parsing
of dbt's structured events into materializations and asset checks, the error handling. The only
difference is where dbt runs: `InProcessDbt` is the `subprocess.Popen` that dagster-dbt's
`DbtCliInvocation` reads, with dbt's events as the JSON lines `dbt --log-format json` prints.
`in_process=False` (or OLIST_DBT_IN_PROCESS=false) gives back the subprocess.
"""

from __future__ import annotations

import importlib.metadata
import logging
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import orjson
from dagster import InitResourceContext
from dagster_dbt import DbtCliResource
from dagster_dbt.core import dbt_cli_invocation
from dagster_dbt.core.dbt_cli_invocation import PARTIAL_PARSE_FILE_NAME, _get_dbt_target_path
from packaging import version

from kafka_io.settings import get_settings
from olist_assets.lib.dbt_project import dbt_project

# The environment dagster-dbt gives the dbt subprocess, as the flags of an in-process invocation
# (its other variables are this process's environment, which dbt in process reads anyway).
ENV_FLAGS = {
    "DBT_PROJECT_DIR": "--project-dir",
    "DBT_PROFILES_DIR": "--profiles-dir",
    "DBT_TARGET_PATH": "--target-path",
    "DBT_LOG_PATH": "--log-path",
    "DBT_INDIRECT_SELECTION": "--indirect-selection",
}
# dbt's own stdout logger off, and no usage pings: for every command this process runs.
QUIET_FLAGS = ("--log-level", "none", "--no-send-anonymous-usage-stats")
log = logging.getLogger(__name__)


class _Lines:
    """The stdout of an `InProcessDbt`: JSON lines put by dbt's threads, read to the end."""

    _END = object()

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.closed = False

    def put(self, line: bytes) -> None:
        self._queue.put(line)

    def end(self) -> None:
        self._queue.put(self._END)

    def __iter__(self) -> Iterator[bytes]:
        while (line := self._queue.get()) is not self._END:
            yield line

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True


class InProcessDbt:
    """One dbt command run by `dbtRunner` in a thread of this process, with what dagster-dbt uses
    of a `subprocess.Popen`: `args`, `stdout` (dbt's events at info level and above, as JSON
    lines), `wait`, `poll`, `returncode` (dbt's exit codes: 0 ok, 1 failures, 2 error) and
    `send_signal` (an interrupt cancels dbt's open queries, as dbt's CLI does on Ctrl-C)."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        **_: object,
    ):
        self.args = list(args)
        self.started_at = time.monotonic()
        self.returncode: int | None = None
        self.stdout = _Lines()
        # Paths relative to the subprocess's working directory (the project) made absolute:
        # this process's working directory is not the project's.
        base, env = Path(cwd or "."), env or {}
        flags = [
            arg
            for key, flag in ENV_FLAGS.items()
            if env.get(key)
            for arg in (flag, str(base / env[key]))
        ]
        # args[0] is the executable. dbt's flags go last: after the (sub)subcommand, as in
        # `dbt docs generate --project-dir ...`. dbt's own stdout logger is off: dagster-dbt
        # prints each event it reads, as from the CLI.
        command = [*self.args[1:], *flags, *QUIET_FLAGS]
        self._thread = threading.Thread(target=self._invoke, args=(command,), daemon=True)
        self._thread.name = "dbt-in-process"
        self._thread.start()

    def _invoke(self, command: list[str]) -> None:
        from dbt.cli.main import dbtRunner

        try:
            result = dbtRunner(callbacks=[self._forward]).invoke(command)
            self.returncode = 0 if result.success else 2 if result.exception else 1
            if result.exception is not None:
                self._error(f"dbt {command[0]} raised: {result.exception!r}")
        except BaseException as exc:  # noqa: BLE001 - reported as dbt's error line, exit 2
            self.returncode = 2
            self._error(f"dbt {command[0]} raised: {exc!r}")
        finally:
            self.stdout.end()

    def _forward(self, msg) -> None:
        from dbt_common.events.functions import msg_to_dict

        if msg.info.level != "debug":  # what `dbt --log-format json` prints by default
            self.stdout.put(orjson.dumps(msg_to_dict(msg), default=str))

    def _error(self, text: str) -> None:
        event = {"info": {"level": "error", "msg": text, "name": "InProcessDbtError"}, "data": {}}
        self.stdout.put(orjson.dumps(event))

    def poll(self) -> int | None:
        return None if self._thread.is_alive() else self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if sig == signal.SIGINT:
            cancel_open_queries()


def cancel_open_queries() -> None:
    """Cancel the queries dbt's adapters have open (what dbt's CLI does on Ctrl-C): the build's
    nodes then fail and dbt returns."""
    from dbt.adapters.factory import FACTORY

    for adapter in list(FACTORY.adapters.values()):
        if adapter.is_cancelable():
            with adapter.connection_named("master"):
                adapter.cancel_open_connections()


# dagster-dbt's DbtCliInvocation.run starts dbt with `subprocess.Popen`; while an in-process
# invocation is being created, that module sees this stand-in instead (one at a time).
_IN_PROCESS = types.SimpleNamespace(
    Popen=InProcessDbt, PIPE=subprocess.PIPE, STDOUT=subprocess.STDOUT
)
_SWAP = threading.Lock()


@contextmanager
def _dbt_in_this_process() -> Iterator[None]:
    with _SWAP:
        original = dbt_cli_invocation.subprocess
        dbt_cli_invocation.subprocess = _IN_PROCESS
        try:
            yield
        finally:
            dbt_cli_invocation.subprocess = original


class DbtWarmUp:
    """A throwaway `dbt parse` in a thread of this process, started when a run sets up its dbt
    resource, so that it overlaps the run's steps before dbt's (ingestion and its checks).

    Why: dbt's first command in a process pays once for the adapter's registration, the
    serializers dbt generates for its classes on first use, the project and profile rendered and
    the partial-parse file read: a fresh process's first `dbt parse` took 1.1 s, the next 0.14 s.
    The parse works in a temporary target folder (a copy of the project's partial-parse file), so
    it writes nothing the run reads; the run's dbt command waits for it (`wait`), so two dbt
    commands never run at once in the process (dbt's flags and adapters are process-wide).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.succeeded: bool | None = None  # None: not run (yet)
        self.finished_at: float | None = None  # time.monotonic()

    def start(self, project_dir: Path, profiles_dir: Path, target: str | None) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._parse, args=(project_dir, profiles_dir, target), daemon=True
                )
                self._thread.name = "dbt-warm-up"
                self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _parse(self, project_dir: Path, profiles_dir: Path, target: str | None) -> None:
        from dbt.cli.main import dbtRunner

        try:
            with tempfile.TemporaryDirectory(prefix="olist-dbt-warm-up-") as tmp:
                # Where dagster-dbt copies a run's partial-parse state from, too.
                state = project_dir / _get_dbt_target_path() / PARTIAL_PARSE_FILE_NAME
                if state.exists():
                    shutil.copy(state, tmp)
                args = ["parse", "--project-dir", str(project_dir), "--profiles-dir",
                        str(profiles_dir), "--target-path", tmp, "--log-path", tmp,
                        *QUIET_FLAGS]  # fmt: skip
                if target:
                    args += ["--target", target]
                self.succeeded = dbtRunner().invoke(args).success
        except Exception:  # noqa: BLE001 - only a lost head start: the run's dbt goes on
            self.succeeded = False
            log.warning("dbt warm-up failed (the run's dbt command is unaffected)", exc_info=True)
        finally:
            self.finished_at = time.monotonic()


# One per process: the run worker runs one run.
WARM_UP = DbtWarmUp()


class OlistDbtResource(DbtCliResource):
    """`DbtCliResource` for this venv's dbt, in process by default (see the module's doc)."""

    in_process: bool = True

    @cached_property
    def _cli_version(self) -> version.Version:
        # dagster-dbt learns the version by running `dbt --version` once per resource, i.e. per
        # run: another dbt process start (1.5-2.7 s measured). It is the installed dbt-core's.
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]):
        # dagster-dbt builds a dbt adapter of its own for every invocation, parsing all of the
        # project's ~500 macros on the way: 2.5 s of a cold per-batch step (cProfile). Only
        # `fetch_row_counts` / `fetch_column_metadata` use it, which per-batch builds do not
        # call: in process, there is none; a subprocess invocation (the daily run) keeps it.
        if dbt_cli_invocation.subprocess is _IN_PROCESS:
            return None
        return super()._initialize_dbt_core_adapter(args)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Dagster sets up a resource only for a run with a step that uses it: this run will run
        # dbt. In process, dbt's one-time start-up begins now, in the background (DbtWarmUp).
        super().setup_for_execution(context)
        if self.in_process:
            project = Path(self.project_dir)
            WARM_UP.start(project, Path(self.profiles_dir or project), self.target)

    def cli(
        self, args: Sequence[str], *, in_process: bool | None = None, **kwargs
    ) -> dbt_cli_invocation.DbtCliInvocation:
        """`DbtCliResource.cli`; ``in_process=False`` runs this one invocation as a subprocess,
        with the dbt adapter handle that dagster-dbt's `fetch_row_counts` and
        `fetch_column_metadata` need."""
        # Never two dbt commands at once in this process (a subprocess invocation, too, builds
        # dagster-dbt's dbt adapter here).
        WARM_UP.wait()
        if not (self.in_process if in_process is None else in_process):
            return super().cli(args, **kwargs)
        with _dbt_in_this_process():
            return super().cli(args, **kwargs)


def dbt_resource(in_process: bool | None = None) -> OlistDbtResource:
    """The dbt resource runs get: this venv's dbt (whatever PATH says), in process unless
    OLIST_DBT_IN_PROCESS=false."""
    return OlistDbtResource(
        project_dir=dbt_project,
        dbt_executable=str(Path(sys.executable).with_name("dbt")),
        in_process=get_settings().dbt_in_process if in_process is None else in_process,
    )
