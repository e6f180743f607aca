"""`olist` = kafka_io's CLI plus the Dagster verbs: `ui`, `docs serve`, `demo`.

Dagster is imported only inside these commands, so `olist stack up` stays fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from kafka_io.cli import _event_source, bench, cli, fail
from kafka_io.cli import main as kafka_io_main
from kafka_io.settings import REPO_ROOT, get_settings
from olist_assets.instance import dagster_env


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address of the UI.")
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True)
def ui(host: str, port: int) -> None:
    """Dagster webserver + daemon on the PostgreSQL instance; Ctrl-C stops both."""
    env = dagster_env(get_settings())
    click.echo(f"Dagster UI: http://{host}:{port}  (DAGSTER_HOME={env['DAGSTER_HOME']})")
    args = ["dagster", "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", host, "-p", str(port)]
    # Replace this process: Ctrl-C goes straight to `dagster dev`, which stops its children.
    os.execvpe(args[0], args, env)


@cli.group()
def docs() -> None:
    """dbt docs."""


@docs.command("serve")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port (default $OLIST_DBT_DOCS_PORT or 8580).")  # fmt: skip
def docs_serve(port: int | None) -> None:
    """Generate the dbt docs and serve them on 127.0.0.1."""
    from olist_assets.dbt.project import DBT_PROJECT_DIR

    port = port or int(os.environ.get("OLIST_DBT_DOCS_PORT", "8580"))
    dbt = str(Path(sys.executable).with_name("dbt"))
    common = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    if subprocess.run([dbt, "docs", "generate", *common]).returncode != 0:
        fail("dbt docs generate failed (is the stack up? `olist stack up`)")
    click.echo(f"dbt docs: http://127.0.0.1:{port}")
    os.execv(
        dbt,
        [dbt, "docs", "serve", *common, "--host", "127.0.0.1", "--port", str(port), "--no-browser"],
    )


@cli.command()
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Replay the real Olist CSVs from DIR instead of synthetic orders.")  # fmt: skip
@click.option("--synthetic", type=click.IntRange(min=1), default=10_000, show_default=True,
              metavar="N", help="Synthetic Olist-shaped orders to replay.")  # fmt: skip
@click.option("--seed", type=int, default=42, show_default=True)
def demo(data_dir: Path | None, synthetic: int, seed: int) -> None:
    """The main job: replay events, materialize the whole graph with checks, print a summary."""
    from olist_assets.demo import run_demo

    events = _event_source(data_dir, None if data_dir else synthetic, seed)
    source = (
        f"real Olist data in {data_dir}"
        if data_dir
        else f"{synthetic:,} synthetic orders (seed {seed})"
    )
    ok = run_demo(get_settings(), events, source)
    sys.exit(0 if ok else 1)


@bench.command("e2e")
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--orders", type=click.IntRange(min=1), default=25, show_default=True,
              help="New synthetic orders per round.")  # fmt: skip
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("bench/results/e2e.json"), show_default=True)  # fmt: skip
def bench_e2e(rounds: int, orders: int, output: Path) -> None:
    """Produce-to-mart latency with the real webserver + daemon (isolated pipeline)."""
    import json
    import statistics
    import tempfile
    import time

    from olist_assets.e2e import E2EPipeline

    latencies = []
    with tempfile.TemporaryDirectory() as tmp, E2EPipeline(get_settings(), Path(tmp)) as e2e:
        click.echo(f"dagster dev up at {e2e.server.url}; {rounds} rounds of {orders} orders")
        for round_ in range(rounds):
            started = time.monotonic()
            events = e2e.produce(orders, seed=1000 + round_)
            e2e.wait_for_marts(timeout=600)
            visible = time.monotonic() - started
            e2e.wait_for_checks(["raw_orders", "fact_orders", "agg_daily_revenue"], timeout=600)
            latencies.append(round(time.monotonic() - started, 2))
            click.echo(
                f"  round {round_ + 1}: {events} events → in the marts after {visible:.1f}s, "
                f"checks passed after {latencies[-1]:.1f}s"
            )
    result = {
        "rounds": rounds,
        "orders_per_round": orders,
        "latency_seconds": latencies,
        "p50": statistics.median(latencies),
        "max": max(latencies),
        "target_seconds": 30,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(
        f"produce-to-mart latency: p50 {result['p50']:.1f}s, max {result['max']:.1f}s → {output}"
    )


@bench.command("dbt")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="The real Olist CSVs [default: ../shared/data/olist].")  # fmt: skip
@click.option("--synthetic", type=click.IntRange(min=1), default=None,
              help="N synthetic orders instead of the real data (how it scales).")  # fmt: skip
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("bench/results/dbt.json"), show_default=True)  # fmt: skip
def bench_dbt(data_dir: Path | None, synthetic: int | None, repeat: int, output: Path) -> None:
    """dbt parse, full build, incremental build after +1% events (isolated schemas)."""
    import json
    import tempfile

    from olist_assets.dbt.bench import run_dbt_bench, table

    if data_dir is None and synthetic is None:
        data_dir = REPO_ROOT.parent / "shared/data/olist"
    events = _event_source(data_dir, synthetic, 42)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_dbt_bench(get_settings(), events, repeat, Path(tmp), click.echo)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(table(result))
    click.echo(f"→ {output}")


def main(argv: list[str] | None = None) -> int:
    return kafka_io_main(argv, cli)


if __name__ == "__main__":
    sys.exit(main())
