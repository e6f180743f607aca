"""`olist bench e2e`: produce-to-mart latency under the real daemon (`dagster dev` on an isolated
pipeline), with the whole history loaded first, and each stage's seconds read from Dagster's
event log (run records, sensor ticks, run and step events, check evaluations), not estimated.

A round produces a few new orders and ends when `agg_daily_revenue` counts them and every check
the round's runs evaluated passed. Early rounds start right after the bulk load, late rounds
after a pause; every run in a round's window is counted, so a second dbt build (automation
rebuilding what the sensor's run built) shows up."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kafka_io.contract import EventDocument
from olist_dev.e2e import E2EPipeline
from olist_dev.settings import StackSettings

DBT_STEP = "olist_dbt_models"
INGEST_STEP = "raw_orders"
LAG_SENSOR = "kafka_lag_sensor"
SENSOR_LOOP_SECONDS = 5.0  # Dagster's sensor daemon evaluates sensors at most this often

# (stage, milestone that ends it): each stage lasts from the previous milestone to its own.
STAGES = (
    ("sensor_wait", "tick"),  # produced → the lag sensor's tick that saw it starts
    ("sensor_tick", "created"),  # tick → run record created
    ("queue", "dequeued"),  # QueuedRunCoordinator picks it up
    ("spawn", "worker"),  # run worker process started (code server spawn + imports)
    ("load_code", "run_start"),  # worker loads the code location, RUN_START
    ("plan", "ingest_start"),  # resources, first step starts
    ("ingest", "ingest_end"),  # raw_orders step
    ("raw_checks", "dbt_start"),  # raw_orders' check steps (and any pool wait)
    ("dbt", "dbt_end"),  # dbt build step (models + tests as checks)
    ("run_end", "run_end"),  # RUN_SUCCESS
)
EVENT_MILESTONES = {
    "RunDequeuedEvent": "dequeued",
    "RunStartEvent": "run_start",
    "RunSuccessEvent": "run_end",
}


def stage_seconds(milestones: dict[str, float]) -> dict[str, float | None]:
    """Each stage's seconds from the milestone times (epoch s); a stage whose end or previous
    milestone is missing is None, and the next present milestone starts the next stage."""
    out: dict[str, float | None] = {}
    previous = milestones.get("produced")
    for stage, end in STAGES:
        at = milestones.get(end)
        out[stage] = round(at - previous, 3) if at is not None and previous is not None else None
        if at is not None:
            previous = at
    return out


def run_milestones(events: list[dict]) -> dict[str, float]:
    """Milestones of one run from its event log (GraphQL logsForRun, timestamps in ms)."""
    found: dict[str, float] = {}
    for event in events:
        at = float(event["timestamp"]) / 1000
        kind, step = event["__typename"], event.get("stepKey")
        if kind in EVENT_MILESTONES:
            found.setdefault(EVENT_MILESTONES[kind], at)
        elif "Started process for run" in (event.get("message") or ""):
            found.setdefault("worker", at)
        elif step in (INGEST_STEP, DBT_STEP):
            name = "ingest" if step == INGEST_STEP else "dbt"
            if kind == "ExecutionStepStartEvent":
                found.setdefault(f"{name}_start", at)
            elif kind in ("ExecutionStepSuccessEvent", "ExecutionStepFailureEvent"):
                found[f"{name}_end"] = at
    return found


def check_results(events: list[dict]) -> list[tuple[str, bool, float]]:
    """(asset/check, passed, epoch s) of every check evaluation in a run's event log."""
    return [
        (
            "/".join(e["evaluation"]["assetKey"]["path"]) + ":" + e["evaluation"]["checkName"],
            bool(e["evaluation"]["success"]),
            float(e["timestamp"]) / 1000,
        )
        for e in events
        if e["__typename"] == "AssetCheckEvaluationEvent"
    ]


@dataclass
class RoundRuns:
    """The runs created in one round's window, read from the instance."""

    runs: list[dict]
    events: dict[str, list[dict]]

    def by_sensor(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self.runs:
            name = run["tags"].get("dagster/sensor_name") or run["tags"].get(
                "dagster/schedule_name", "manual"
            )
            counts[name] = counts.get(name, 0) + 1
        return counts

    def dbt_builds(self) -> int:
        """Runs that executed the dbt step (one per batch is the target)."""
        return sum(
            any(e.get("stepKey") == DBT_STEP for e in self.events[r["runId"]]) for r in self.runs
        )


def round_runs(e2e: E2EPipeline, since: float) -> RoundRuns:
    runs = e2e.runs_since(since)
    return RoundRuns(runs, {r["runId"]: e2e.run_events(r["runId"]) for r in runs})


def measure_round(
    e2e: E2EPipeline, orders: int, seed: int, settle: float, timeout: float = 600
) -> dict:
    """Produce ``orders`` new orders and time them into the marts, stage by stage."""
    started = time.time()
    events = e2e.produce(orders, seed=seed)
    produced = time.time()
    e2e.wait_for_marts(timeout=timeout)
    visible = time.time()
    e2e.wait_for_idle(timeout=timeout)
    # Long enough for the automation sensor's next tick: a rebuild it requests lands here.
    time.sleep(settle)
    e2e.wait_for_idle(timeout=timeout)
    window = round_runs(e2e, started)
    return round_report(e2e, window, started, produced, visible, events)


def attributed_run(sensor_runs: list[dict], visible: float) -> dict | None:
    """The sensor run that brought the last of a round's orders: the last one created before
    the marts showed them (a slow produce can split a round over two runs). Not "the last to
    finish before": a run ends after its dbt tests and metadata, seconds after the marts show
    the orders, and such rounds went unattributed."""
    return max(
        (r for r in sensor_runs if r["creationTime"] <= visible),
        key=lambda r: r["creationTime"],
        default=None,
    )


def round_report(
    e2e: E2EPipeline,
    window: RoundRuns,
    started: float,
    produced: float,
    visible: float,
    events: int,
) -> dict:
    sensor_runs = [r for r in window.runs if r["tags"].get("dagster/sensor_name") == LAG_SENSOR]
    main = attributed_run(sensor_runs, visible)
    milestones = {"produced": produced}
    checks: list[tuple[str, bool, float]] = []
    if main is not None:
        milestones["created"] = main["creationTime"]
        tick = e2e.tick_of(LAG_SENSOR, main["runId"])
        if tick is not None:
            milestones["tick"] = tick
        milestones |= run_milestones(window.events[main["runId"]])
    for run in sensor_runs:
        checks += check_results(window.events[run["runId"]])
    failed = sorted({name for name, passed, _ in checks if not passed})
    checked = max((at for *_, at in checks), default=visible)
    done = max(visible, checked)
    return {
        "events": events,
        "produce_seconds": round(produced - started, 3),
        "visible_seconds": round(visible - started, 3),
        "latency_seconds": round(done - started, 3),
        "stages": stage_seconds(milestones),
        "checks_evaluated": len(checks),
        "checks_failed": failed,
        "runs": window.by_sensor(),
        "dbt_builds": window.dbt_builds(),
        "sensor_run": main["runId"] if main else None,
    }


def bulk_load(e2e: E2EPipeline, history: Iterable[EventDocument], echo) -> dict:
    """Produce the whole history, then let the daemon ingest and build it (the sensor's first
    run): what a user gets after loading the dataset."""
    started = time.time()
    produced = e2e.produce_events(list(history))
    replayed = time.time()
    e2e.start_server()
    server_up = time.time()
    echo(f"history: {produced:,} events replayed in {replayed - started:.1f}s; dagster dev up")
    e2e.wait_for_marts(timeout=1800)
    e2e.wait_for_idle(timeout=1800)
    window = round_runs(e2e, server_up)
    report = round_report(e2e, window, server_up, server_up, time.time(), produced)
    report["replay_seconds"] = round(replayed - started, 3)
    report["orders"] = len(e2e.orders)
    return report


def summarize(rounds: list[dict]) -> dict:
    """p50/max of the latency and of each stage, and each stage's share of the summed stages."""
    latencies = [r["latency_seconds"] for r in rounds]
    stages: dict[str, dict] = {}
    for stage, _ in STAGES:
        values = [r["stages"][stage] for r in rounds if r["stages"].get(stage) is not None]
        if values:
            stages[stage] = {"p50": statistics.median(values), "max": max(values)}
    total = sum(s["p50"] for s in stages.values()) or 1.0
    for s in stages.values():
        s["share"] = round(s["p50"] / total, 3)
    return {
        "p50": statistics.median(latencies),
        "max": max(latencies),
        "all_checks_passed": not any(r["checks_failed"] for r in rounds),
        "dbt_builds_per_round": sorted({r["dbt_builds"] for r in rounds}),
        "stages": stages,
    }


def run_e2e_bench(
    settings: StackSettings,
    work_dir,
    history: Iterable[EventDocument] | None,
    early_rounds: int,
    late_rounds: int,
    pause: float,
    orders: int,
    settle: float,
    echo: Callable[[str], None] = print,
) -> dict:
    result: dict = {"orders_per_round": orders, "settle_seconds": settle, "pause_seconds": pause}
    with E2EPipeline(settings, work_dir, start_server=history is None) as e2e:
        if history is not None:
            result["bulk_load"] = bulk_load(e2e, history, echo)
            echo(
                f"bulk load: {result['bulk_load']['orders']:,} orders in the marts "
                f"{result['bulk_load']['latency_seconds']:.1f}s after dagster dev was up"
            )
        loaded = time.time()
        rounds = []
        phase = random.Random(7)
        for index in range(early_rounds + late_rounds):
            if index == early_rounds and late_rounds:
                echo(f"pause {pause:.0f}s")
                time.sleep(pause)
            # A random phase against the sensor daemon's ~5 s loop: rounds follow each other at a
            # fixed pace, which otherwise locks produce times to just before a tick and hides
            # the sensor wait a user's orders, arriving at any time, see.
            jitter = phase.uniform(0, SENSOR_LOOP_SECONDS)
            time.sleep(jitter)
            report = measure_round(e2e, orders, seed=1000 + index, settle=settle)
            report["jitter_seconds"] = round(jitter, 3)
            report["phase"] = "early" if index < early_rounds else "late"
            report["started_after_load_seconds"] = round(time.time() - loaded, 1)
            rounds.append(report)
            echo(
                f"  round {index + 1} ({report['phase']}): {report['latency_seconds']:.1f}s, "
                f"{report['dbt_builds']} dbt build(s), runs {report['runs']}, "
                f"failed checks {report['checks_failed'] or 'none'}"
            )
        result["rounds"] = rounds
        result["history_orders"] = len(e2e.orders) - orders * len(rounds)
    result["summary"] = summarize(rounds)
    result["summary_early"] = summarize([r for r in rounds if r["phase"] == "early"])
    if late_rounds:
        result["summary_late"] = summarize([r for r in rounds if r["phase"] == "late"])
    return result


def table(result: dict) -> str:
    """Per-round stage seconds, then p50/max and share per stage."""
    names = [stage for stage, _ in STAGES]
    head = f"{'round':<9}" + "".join(f"{n[:10]:>11}" for n in names) + f"{'latency':>9}{'dbt':>4}"
    lines = [head]
    for i, r in enumerate(result["rounds"], 1):
        cells = "".join(
            f"{'-' if r['stages'].get(n) is None else format(r['stages'][n], '.2f'):>11}"
            for n in names
        )
        lines.append(
            f"{i:>2} {r['phase']:<6}{cells}{r['latency_seconds']:>9.2f}{r['dbt_builds']:>4}"
        )
    summary = result["summary"]
    for label, key in (("p50", "p50"), ("max", "max"), ("share", "share")):
        cells = "".join(
            f"{(format(summary['stages'][n][key], '.2f') if n in summary['stages'] else '-'):>11}"
            for n in names
        )
        total = summary[key] if key in ("p50", "max") else None
        lines.append(f"{label:<9}{cells}" + (f"{total:>9.2f}" if total is not None else ""))
    return "\n".join(lines)
