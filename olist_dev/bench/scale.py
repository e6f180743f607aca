"""`olist bench scale`: how the pipeline grows with history. At each size (multiples of Olist's
99,441 orders, synthetic):
- `olist replay` and `olist ingest --until-caught-up` as subprocesses: wall seconds, and peak
  RSS sampled from /proc (the largest process's own peak, and the peak sum over the command and
  its workers; bench/rss.py);
- the full dbt build (`--full-refresh`);
- the per-batch step inside a Dagster run (raw_orders, its checks and the dbt build, in-process
  `materialize`, step times from the run's event log) after +100 orders and after +1%: three
  runs of each, interleaved, reported as medians."""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from kafka_io.settings import get_settings
from olist_dev.bench.rss import measure_command
from olist_dev.dbt_sandbox import DbtSandbox, environ
from olist_dev.settings import StackSettings

OLIST_ORDERS = 99_441
OLIST_BIN = Path(sys.executable).with_name("olist")
BATCHES = ("+100", "+1%")
REPEATS = 3  # runs per batch size and history size, interleaved; the report gives the median
FIRST_SEED = 7001  # of the batches' synthetic orders, one seed per batch


def timed_child(args: list[str], env: dict[str, str]) -> dict:
    """Run ``args``; wall seconds and peak RSS in MB of the command's own processes: the
    largest single one (VmHWM) and the tree's sum (the command and e.g. ingestion workers)."""
    run = measure_command(args, env)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {run.returncode}:\n{run.output[-2000:]}")
    return {
        "seconds": run.seconds,
        "peak_rss_mb": run.peak.largest_mb,
        "tree_rss_mb": run.peak.tree_mb,
        "processes": run.peak.processes,
    }


def step_seconds(records) -> dict[str, float]:
    """Seconds per step of a run, from its event log records (STEP_START → STEP_SUCCESS)."""
    starts, out = {}, {}
    for record in records:
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = record.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            out[event.step_key] = round(record.timestamp - starts[event.step_key], 3)
    return out


def batch_run(box: DbtSandbox, topic: str, group: str) -> dict:
    """One run as the lag sensor launches it: raw_orders, its checks and the dbt build."""
    import dagster as dg

    from olist_assets.defs.dbt.assets import olist_dbt_models
    from olist_assets.defs.ingest.assets import olist_orders_topic, raw_orders
    from olist_assets.defs.ingest.checks import (
        raw_orders_dead_letters,
        raw_orders_offsets_reconcile,
    )
    from olist_assets.lib.dbt_resource import dbt_resource
    from olist_assets.lib.resources import OlistIngestResource

    assets = [olist_orders_topic, raw_orders, raw_orders_dead_letters,
              raw_orders_offsets_reconcile, olist_dbt_models]  # fmt: skip

    resources = {
        "ingest": OlistIngestResource(topic=topic, group=group, raw_schema=box.raw_schema),
        # The resource the code location gives runs (dbt in process).
        "dbt": dbt_resource(),
    }
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.monotonic()
        result = dg.materialize(assets, resources=resources, instance=instance)
        seconds = time.monotonic() - started
        if not result.success:
            raise RuntimeError("the batch run failed")
        steps = step_seconds(instance.all_logs(result.run_id))
        checks = result.get_asset_check_evaluations()
        raw = result.asset_materializations_for_node("raw_orders")[0].metadata
    return {
        "run_seconds": round(seconds, 2),
        "steps": steps,
        "events_ingested": raw["events_ingested"].value,
        "checks": len(checks),
        "checks_failed": sorted(c.check_name for c in checks if not c.passed),
    }


def batch_summary(orders: int, runs: list[dict]) -> dict:
    """The median dbt step and run of a batch size's runs, and every run."""
    return {
        "orders": orders,
        "dbt_step_median": statistics.median(r["steps"]["olist_dbt_models"] for r in runs),
        "run_seconds_median": statistics.median(r["run_seconds"] for r in runs),
        "checks_failed": sorted({c for r in runs for c in r["checks_failed"]}),
        "runs": runs,
    }


def measure_size(
    settings: StackSettings, factor: float, work_dir: Path, echo: Callable[[str], None]
) -> dict:
    orders = round(OLIST_ORDERS * factor)
    tag = uuid.uuid4().hex[:8]
    topic, group = f"bench.scale.{tag}", f"bench-scale-{tag}"
    out: dict = {"factor": factor, "orders": orders}
    with DbtSandbox(settings, work_dir / f"x{factor}") as box:
        env = {
            **os.environ,
            "OLIST_KAFKA_TOPIC": topic,
            "OLIST_KAFKA_GROUP": group,
            "OLIST_RAW_SCHEMA": box.raw_schema,
        }
        try:
            out["replay"] = timed_child(
                [str(OLIST_BIN), "replay", "--synthetic", str(orders), "--seed", "42"], env
            )
            out["ingest"] = timed_child([str(OLIST_BIN), "ingest", "--until-caught-up"], env)
            echo(f"  x{factor}: replay {out['replay']}, ingest {out['ingest']}")
            with environ({**box.dbt_env_vars(), "OLIST_KAFKA_TOPIC": topic,
                          "OLIST_KAFKA_GROUP": group}):  # fmt: skip
                get_settings.cache_clear()
                from olist_dev.bench.dbt import TimedDbt

                # The full build leaves its parse state in `target`, under this sandbox's
                # environment; the batch runs start from it (dagster-dbt copies it), as runs
                # under `dagster dev` start from the code server's parse.
                target = work_dir / f"target_x{factor}"
                full = TimedDbt(target).run(
                    ["build", "--full-refresh", "--exclude-resource-type", "unit_test"],
                    into_target=True,
                )
                out["full_build"] = full
                echo(f"  x{factor}: full build {full['seconds']:.1f}s")
                sizes = {"+100": 100, "+1%": max(1, orders // 100)}
                runs: dict[str, list[dict]] = {label: [] for label in BATCHES}
                with environ({"DBT_TARGET_PATH": str(target)}):
                    for seed in range(FIRST_SEED, FIRST_SEED + REPEATS * len(BATCHES)):
                        label = BATCHES[(seed - FIRST_SEED) % len(BATCHES)]
                        timed_child([str(OLIST_BIN), "replay", "--synthetic",
                                     str(sizes[label]), "--seed", str(seed)], env)  # fmt: skip
                        runs[label].append(batch_run(box, topic, group))
                        echo(f"  x{factor}: batch {label} {runs[label][-1]}")
                for label in BATCHES:
                    out[f"batch {label}"] = batch_summary(sizes[label], runs[label])
        finally:
            get_settings.cache_clear()
            from kafka import KafkaAdminClient

            from kafka_io.kafka_client import client_config

            admin = KafkaAdminClient(**client_config(settings))
            admin.delete_topics([topic])
            admin.close()
    return out


def run_scale_bench(
    settings: StackSettings, factors: list[float], work_dir: Path, echo=print
) -> dict:
    sizes = []
    for factor in factors:
        sizes.append(measure_size(settings, factor, work_dir, echo))
    result: dict = {"sizes": sizes}
    base = sizes[0]
    for size in sizes[1:]:
        key = f"x{size['factor']}_vs_x{base['factor']}"
        result[key] = {
            "full_build": round(size["full_build"]["seconds"] / base["full_build"]["seconds"], 3),
            **{
                f"dbt_step {label}": round(
                    size[f"batch {label}"]["dbt_step_median"]
                    / base[f"batch {label}"]["dbt_step_median"],
                    3,
                )
                for label in BATCHES
            },
        }
    return result


def table(result: dict) -> str:
    # Per command: its largest process's peak RSS and the peak sum over its process tree.
    lines = [
        f"{'size':<6}{'orders':>10}{'replay s':>10}{'peak MB':>8}{'tree MB':>8}{'ingest s':>10}"
        f"{'peak MB':>8}{'tree MB':>8}{'full s':>8}{'+100 dbt s':>11}{'+100 run s':>11}"
        f"{'+1% dbt s':>10}{'+1% run s':>10}"
    ]
    for s in result["sizes"]:
        small, pct = s["batch +100"], s["batch +1%"]
        memory = {
            command: f"{s[command]['peak_rss_mb']:>8.0f}{s[command]['tree_rss_mb']:>8.0f}"
            for command in ("replay", "ingest")
        }
        lines.append(
            f"x{s['factor']:<5}{s['orders']:>10,}{s['replay']['seconds']:>10.1f}"
            f"{memory['replay']}{s['ingest']['seconds']:>10.1f}"
            f"{memory['ingest']}{s['full_build']['seconds']:>8.1f}"
            f"{small['dbt_step_median']:>11.2f}{small['run_seconds_median']:>11.2f}"
            f"{pct['dbt_step_median']:>10.2f}{pct['run_seconds_median']:>10.2f}"
        )
    return "\n".join(lines)
