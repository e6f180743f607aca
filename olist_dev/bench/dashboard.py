"""`olist bench dashboard`: every dashboard query (olist_dashboard.queries.QUERIES) timed as the
read-only role, median of N, on the real history: built into a sandbox (its own raw schema and
schema prefix, dropped afterwards), or an existing build (`--schema-prefix`)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path

from kafka_io.contract import EventDocument
from olist_dashboard import queries
from olist_dev.dbt_sandbox import DbtSandbox
from olist_dev.settings import StackSettings
from olist_dev.stack.postgres import admin_connect, grant_reader_privileges

TARGET_MS = 200
# A typical narrowed view: the biggest state over one quarter.
FILTERED = queries.Filters(start=date(2018, 1, 1), end=date(2018, 3, 31), states=("SP",))


def time_queries(
    settings: StackSettings, filters: queries.Filters, repeat: int
) -> dict[str, dict[str, float]]:
    """Query name → median and max milliseconds over ``repeat`` runs (after one warm-up run,
    as the dashboard's long-lived server would have its caches warm)."""
    schema = settings.analytics_schema
    timings = {}
    with queries.connect(settings) as conn:
        for name, query in queries.QUERIES.items():
            query(conn, schema, filters)
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                query(conn, schema, filters)
                samples.append((time.perf_counter() - started) * 1000)
            timings[name] = {
                "median_ms": round(statistics.median(samples), 2),
                "max_ms": round(max(samples), 2),
            }
    return timings


def bench(settings: StackSettings, repeat: int) -> dict:
    runs = {
        "all": time_queries(settings, queries.Filters(), repeat),
        "filtered": time_queries(settings, FILTERED, repeat),
    }
    slowest = max(t["median_ms"] for run in runs.values() for t in run.values())
    return {"repeat": repeat, "target_ms": TARGET_MS, "slowest_median_ms": slowest, **runs}


def run_dashboard_bench(
    settings: StackSettings,
    events: Iterable[EventDocument] | None,
    repeat: int,
    work_dir: Path,
    echo: Callable[[str], None],
) -> dict:
    """Time the queries on ``settings``' marts, or, given ``events``, on a sandbox built from
    them (dbt build as production runs it, the reader's privileges as the stack grants them)."""
    if events is None:
        return {"schema": settings.analytics_schema, **bench(settings, repeat)}
    with DbtSandbox(settings, work_dir) as sandbox:
        echo(f"loading events into {sandbox.raw_schema} ...")
        loaded = sandbox.load(events)
        with admin_connect(settings) as conn:
            grant_reader_privileges(conn, settings, sandbox.schema("analytics"))
        echo(f"{loaded:,} events; dbt build into {sandbox.prefix}* ...")
        run = sandbox.dbt("build", "--exclude-resource-type", "unit_test")
        if run.returncode != 0:
            raise RuntimeError(f"dbt build failed:\n{run.output[-3000:]}")
        scoped = settings.model_copy(update={"schema_prefix": sandbox.prefix})
        return {"events": loaded, "schema": "<sandbox>analytics", **bench(scoped, repeat)}


def table(result: dict) -> str:
    lines = [f"{'query':<20}{'all: median':>14}{'max':>10}{'filtered: median':>19}{'max':>10}"]
    for name, timing in result["all"].items():
        narrowed = result["filtered"][name]
        lines.append(
            f"{name:<20}{timing['median_ms']:>12.1f}ms{timing['max_ms']:>8.1f}ms"
            f"{narrowed['median_ms']:>17.1f}ms{narrowed['max_ms']:>8.1f}ms"
        )
    verdict = "under" if result["slowest_median_ms"] < result["target_ms"] else "OVER"
    lines.append(
        f"slowest median {result['slowest_median_ms']:.1f} ms: {verdict} the "
        f"{result['target_ms']} ms target"
    )
    return "\n".join(lines)
