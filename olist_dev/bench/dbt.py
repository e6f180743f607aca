"""`olist bench dbt`: `dbt parse`, the full build, and the incremental build after 1% more events,
on the real data (or synthetic orders, to see how it scales) in a sandbox, with dbt run the way a
run's dbt step runs it: the code location's dbt resource (dagster-dbt's DbtCliResource with dbt
in process, olist_assets/lib/dbt_resource.py; partial parsing carried over from the target
folder) with the run's build arguments (`dbt_build_args`)."""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from kafka_io.contract import EventDocument
from olist_assets.defs.dbt.assets import dbt_build_args
from olist_assets.lib.dbt_resource import dbt_resource
from olist_dev.dbt_sandbox import DbtSandbox, environ, rows_affected
from olist_dev.settings import StackSettings

PHASES = ("model", "test", "unit_test", "operation")


def phase_seconds(results: list[dict]) -> dict[str, float]:
    """Seconds of node execution per resource type (summed over threads), from run_results."""
    totals = dict.fromkeys(PHASES, 0.0)
    for result in results:
        kind = result["unique_id"].split(".")[0]
        totals[kind] = totals.get(kind, 0.0) + result["execution_time"]
    return {kind: round(seconds, 3) for kind, seconds in totals.items()}


class TimedDbt:
    """dbt invocations through the runs' dbt resource, as the Dagster assets make them, timed."""

    def __init__(self, target: Path):
        self.target = target
        self.resource = dbt_resource()

    def run(self, args: list[str], *, into_target: bool = False) -> dict:
        """Wall seconds of one invocation, dbt's own elapsed time and per-phase node times.
        `into_target`: write the artifacts (and partial_parse.msgpack) to the shared target
        folder, which later invocations copy the parse state from (like `dbt/target`)."""
        # dagster-dbt echoes dbt's log lines to stdout (the run worker's); keep them out of the
        # report.
        with contextlib.redirect_stdout(io.StringIO()):
            started = time.monotonic()
            invocation = self.resource.cli(
                args, raise_on_error=False, target_path=self.target if into_target else None
            )
            invocation.wait()
            seconds = time.monotonic() - started
        if not invocation.is_successful():
            log = invocation.target_path / "dbt.log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(f"dbt {' '.join(args)} failed ({invocation.target_path}):\n{tail}")
        results_file = invocation.target_path / "run_results.json"
        # `dbt parse` writes no run results.
        run_results = (
            json.loads(results_file.read_text())
            if results_file.exists()
            else {"elapsed_time": 0.0, "results": []}
        )
        results = run_results["results"]
        return {
            "seconds": round(seconds, 3),
            "dbt_elapsed": round(run_results["elapsed_time"], 3),
            "phases": phase_seconds(results),
            "nodes": len(results),
            "orders_recomputed": rows_affected(results, "int_orders_latest"),
        }


def run_dbt_bench(
    settings: StackSettings,
    events: Iterable[EventDocument],
    repeat: int,
    work_dir: Path,
    echo: Callable[[str], None] = print,
) -> dict:
    events = list(events)
    cut = len(events) * 99 // 100
    history, batch = events[:cut], events[cut:]
    echo(f"{len(events):,} events: {len(history):,} history, then a batch of {len(batch):,}")
    rounds = []
    with DbtSandbox(settings, work_dir) as box:
        # The incremental run reads the batch's offset range alone, however recent history is.
        box.load(history)
        target = work_dir / "target"
        with environ({**box.dbt_env_vars(), "DBT_TARGET_PATH": str(target)}):
            dbt = TimedDbt(target)
            scratch = dbt.run(["parse", "--no-partial-parse"], into_target=True)
            echo(f"dbt parse from scratch: {scratch['seconds']:.2f}s")
            for round_ in range(repeat):
                if round_:
                    box.unload_from(cut)
                parse = dbt.run(["parse"], into_target=True)
                full = dbt.run(["build", "--full-refresh"])
                box.load(batch)
                incremental = dbt.run(dbt_build_args())
                rounds.append({"parse": parse, "full": full, "incremental": incremental})
                echo(
                    f"  round {round_ + 1}: parse {parse['seconds']:.2f}s, full build "
                    f"{full['seconds']:.2f}s, incremental build {incremental['seconds']:.2f}s "
                    f"({incremental['orders_recomputed']:,} orders recomputed)"
                )
    medians = {
        step: round(statistics.median(r[step]["seconds"] for r in rounds), 2)
        for step in ("parse", "full", "incremental")
    }
    return {
        "events": len(events),
        "history_events": len(history),
        "batch_events": len(batch),
        "repeat": repeat,
        "commands": {
            "parse": "dbt parse",
            "full": "dbt build --full-refresh",
            "incremental": "dbt " + " ".join(dbt_build_args()),
        },
        "parse_from_scratch_seconds": scratch["seconds"],
        "median_seconds": medians,
        "ratio_incremental_to_full": round(medians["incremental"] / medians["full"], 3),
        "rounds": rounds,
    }


def table(result: dict) -> str:
    """The figures as a text table: medians, every round, per-phase node seconds."""
    lines = [
        f"{'step':<12} {'median s':>9}  {'rounds (s)':<24} {'dbt elapsed':>11}  "
        f"{'models':>6} {'tests':>6} {'unit':>5}"
    ]
    for step in ("parse", "full", "incremental"):
        runs = [r[step] for r in result["rounds"]]
        last = runs[-1]
        seconds = ", ".join(f"{r['seconds']:.2f}" for r in runs)
        lines.append(
            f"{step:<12} {result['median_seconds'][step]:>9.2f}  "
            f"{seconds:<24} {last['dbt_elapsed']:>11.2f}  "
            f"{last['phases']['model']:>6.2f} {last['phases']['test']:>6.2f} "
            f"{last['phases']['unit_test']:>5.2f}"
        )
    lines.append(
        f"incremental / full = {result['ratio_incremental_to_full']:.1%}; "
        f"parse from scratch {result['parse_from_scratch_seconds']:.2f}s "
        "(node seconds summed over dbt's threads, last round)"
    )
    return "\n".join(lines)
