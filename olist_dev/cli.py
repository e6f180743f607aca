"""`olist`, the developer's command: one click tree of the runtime commands (kafka_io.cli: replay,
ingest, offsets) and the dev tooling (local stack, demo, Dagster UI, dbt docs, benchmarks),
assembled with `add_command`. Heavy imports (Dagster, dbt) happen inside the commands, so
`olist stack up` stays fast."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import click

from kafka_io import cli as runtime
from kafka_io.cli import configure_logging, event_source, fail
from olist_dev.instance import dagster_env
from olist_dev.settings import REPO_ROOT, get_stack_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Olist real-time analytics: local stack, Kafka replay, exactly-once ingestion, Dagster."""


for command in (runtime.replay, runtime.ingest, runtime.offsets):
    cli.add_command(command)


@click.group()
def stack() -> None:
    """The local PostgreSQL + Kafka stack (no Docker); state under .stack/."""


def _run_stack(action) -> None:
    """Echo what a stack action did, or its one-line StackError (exit 1)."""
    from olist_dev.stack import StackError

    try:
        for line in action(get_stack_settings()):
            click.echo(line)
    except StackError as exc:
        fail(str(exc))


@stack.command("up")
def stack_up() -> None:
    """Start PostgreSQL and Kafka (a no-op when they already run); wait until both answer."""
    from olist_dev.stack import up

    _run_stack(up)


@stack.command("down")
def stack_down() -> None:
    """Stop Kafka and PostgreSQL by PID; data stays on disk."""
    from olist_dev.stack import down

    _run_stack(down)


@stack.command("status")
def stack_status() -> None:
    """Print shell-sourceable settings (eval "$(olist stack status)"); exit 1 if not running."""
    from olist_dev.stack import status_lines

    lines, running = status_lines(get_stack_settings())
    click.echo("\n".join(lines))
    sys.exit(0 if running else 1)


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_warning(host: str, what: str) -> str | None:
    """The warning for serving ``what`` (no authentication) on ``host``, or None on loopback."""
    if is_loopback(host):
        return None
    return (
        f"olist: warning: {what} has no authentication; --host {host} lets anyone who can "
        "reach this address use it"
    )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address of the UI.")
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True)
def ui(host: str, port: int) -> None:
    """Dagster webserver + daemon on the PostgreSQL instance; Ctrl-C stops both."""
    if (warning := bind_warning(host, "the Dagster UI")) is not None:
        click.echo(warning, err=True)
    env = dagster_env(get_stack_settings())
    click.echo(f"Dagster UI: http://{host}:{port}  (DAGSTER_HOME={env['DAGSTER_HOME']})")
    # `dg dev` in the dg project (pyproject [tool.dg]): webserver + daemon, this venv.
    dg = str(Path(sys.executable).with_name("dg"))
    args = [dg, "dev", "--use-active-venv", "--host", host, "--port", str(port)]
    os.chdir(REPO_ROOT)
    # Replace this process: Ctrl-C goes straight to `dagster dev`, which stops its children.
    os.execvpe(args[0], args, env)


@click.group()
def docs() -> None:
    """dbt docs."""


@docs.command("serve")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port (default $OLIST_DBT_DOCS_PORT or 8580).")  # fmt: skip
@click.option("--target-path", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the docs are written [default: the dbt project's target/].")  # fmt: skip
def docs_serve(port: int | None, target_path: Path | None) -> None:
    """Generate the dbt docs and serve them on 127.0.0.1."""
    from olist_assets.lib.dbt_project import DBT_PROJECT_DIR

    s = get_stack_settings()
    port = port or s.dbt_docs_port
    dbt = str(Path(sys.executable).with_name("dbt"))
    common = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    if target_path is not None:
        common += ["--target-path", str(target_path.resolve())]
    # dbt reads its credentials from the environment only (dbt/profiles.yml).
    env = {**os.environ, **s.dbt_env()}
    # Tests compiled over the whole history: a batch's scope reads the offset snapshot that only
    # a build's on-run-start makes (a fresh stack has none), and the docs describe every row.
    generate = [dbt, "docs", "generate", *common, "--vars", '{"full_history_tests": true}']
    if subprocess.run(generate, env=env).returncode != 0:
        fail("dbt docs generate failed (is the stack up? `olist stack up`)")
    click.echo(f"dbt docs: http://127.0.0.1:{port}")
    sys.stdout.flush()
    os.execve(
        dbt,
        [dbt, "docs", "serve", *common, "--host", "127.0.0.1", "--port", str(port), "--no-browser"],
        env,
    )


@click.command()
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Replay the real Olist CSVs from DIR instead of synthetic orders.")  # fmt: skip
@click.option("--synthetic", type=click.IntRange(min=1), default=10_000, show_default=True,
              metavar="N", help="Synthetic Olist-shaped orders to replay.")  # fmt: skip
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--reset", "start_empty", is_flag=True,
              help="Start from empty: recreate the topic, empty raw, drop the marts; then load "
                   "this dataset. Needed to switch datasets.")  # fmt: skip
def demo(data_dir: Path | None, synthetic: int, seed: int, start_empty: bool) -> None:
    """The main job: replay events, materialize the whole graph with checks, print a summary.

    The warehouse holds one dataset at a time: the same one again is idempotent (all
    duplicates); another one is refused unless --reset."""
    from olist_dev.datasets import DatasetError, olist_dataset, synthetic_dataset
    from olist_dev.demo import run_demo

    events = event_source(data_dir, None if data_dir else synthetic, seed)
    dataset = olist_dataset(data_dir) if data_dir else synthetic_dataset(synthetic, seed)
    try:
        ok = run_demo(get_stack_settings(), events, dataset, start_empty=start_empty)
    except DatasetError as exc:
        fail(str(exc))
    sys.exit(0 if ok else 1)


@click.command(
    "dg", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def dg_command(args: tuple[str, ...]) -> None:
    """`dg ARGS` on the local stack's Dagster instance, e.g. `olist dg check defs`,
    `olist dg list defs`."""
    dg = str(Path(sys.executable).with_name("dg"))
    venv = ["--use-active-venv"] if args[:2] in (("check", "defs"), ("dev",)) else []
    os.chdir(REPO_ROOT)
    os.execve(dg, [dg, *args, *venv], dagster_env(get_stack_settings()))


@click.group()
def bench() -> None:
    """Benchmarks (figures, not pass/fail tests)."""


def _fetch_sizes(ctx, param, values: tuple[str, ...]) -> list[tuple[int, int]]:
    """``--fetch 8/1`` as (8, 1): whole MiB, each at least 1 (the settings' floor)."""
    sizes = []
    for value in values:
        try:
            total, partition = (int(part) for part in value.split("/"))
        except ValueError:
            raise click.BadParameter(f"{value!r} is not ALL/PART in MiB, e.g. 8/1") from None
        if min(total, partition) < 1:
            raise click.BadParameter(f"{value!r}: each limit is at least 1 MiB")
        sizes.append((total, partition))
    return sizes


@bench.command("ingest")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--synthetic", type=click.IntRange(min=1), metavar="N")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("bench/results/ingest.json"),
    show_default=True,
)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes of our consumer [default: CPU count, as `olist ingest`].")  # fmt: skip
@click.option("--fetch", "fetch_sizes", multiple=True, callback=_fetch_sizes, metavar="ALL/PART",
              help="Run our consumer with these fetch limits in MiB (in all / per partition), "
                   "each side by side in the same rounds; repeatable [default: the settings'].")  # fmt: skip
def bench_ingest(data_dir, synthetic, repeat, output, workers, fetch_sizes) -> None:
    """Our consumer vs the naive one vs kafka-python and COPY ceilings (events/s)."""
    from olist_dev.bench.ingest import run_ingest_bench

    events = event_source(data_dir, synthetic, 42)
    configure_logging(False)
    s = get_stack_settings()
    result = run_ingest_bench(
        s,
        events,
        admin_dsn=s.admin_dsn_for(s.pg_database),
        output=output,
        repeat=repeat,
        workers=workers,
        fetch_sizes=fetch_sizes,
    )
    click.echo(f"{result['events']} events, median of {repeat} run(s):")
    for name, rate in result["events_per_second"].items():
        click.echo(f"  {name:<16} {rate:>10,} events/s")
    for name, ratio in result["ratios"].items():
        click.echo(f"  {name:<30} {ratio:>6} (target {result['targets'][name]})")
    click.echo(f"written to {output}")


@bench.command("e2e")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="History to load first [default: ../shared/data/olist].")  # fmt: skip
@click.option("--synthetic", type=click.IntRange(min=1), default=None, metavar="N",
              help="N synthetic orders of history instead of the real data.")  # fmt: skip
@click.option("--small-history", is_flag=True,
              help="No history: only the rounds' orders (the warehouse stays tiny).")  # fmt: skip
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Rounds started right after the bulk load.")  # fmt: skip
@click.option("--late-rounds", type=click.IntRange(min=0), default=5, show_default=True,
              help="Rounds after --pause.")  # fmt: skip
@click.option("--pause", type=click.FloatRange(min=0), default=120, show_default=True,
              help="Seconds between the early and the late rounds.")  # fmt: skip
@click.option("--orders", type=click.IntRange(min=1), default=25, show_default=True,
              help="New synthetic orders per round.")  # fmt: skip
@click.option("--settle", type=click.FloatRange(min=0), default=12, show_default=True,
              help="Seconds each round waits after its run, so a rebuild by automation is counted.")  # fmt: skip
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("bench/results/e2e.json"), show_default=True)  # fmt: skip
def bench_e2e(data_dir, synthetic, small_history, rounds, late_rounds, pause, orders, settle,
              output) -> None:  # fmt: skip
    """Produce-to-mart latency under the real webserver + daemon (isolated pipeline), with the
    history loaded first; each stage's seconds from Dagster's event log."""
    import json
    import tempfile

    from olist_dev.bench.e2e import run_e2e_bench, table

    if small_history and (data_dir or synthetic):
        fail("--small-history loads no history: drop --data-dir/--synthetic")
    history = None
    if not small_history:
        if data_dir is None and synthetic is None:
            data_dir = REPO_ROOT.parent / "shared/data/olist"
            if not data_dir.is_dir():
                fail(f"no Olist data in {data_dir}: give --data-dir DIR or --synthetic N")
        history = event_source(data_dir, synthetic, 42)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_e2e_bench(
            get_stack_settings(), Path(tmp), history, rounds, late_rounds, pause, orders,
            settle, click.echo,
        )  # fmt: skip
    result["history"] = (
        "none" if small_history else str(data_dir) if data_dir else f"{synthetic} synthetic"
    )
    result["target"] = {"p50_seconds": 15, "max_seconds": 30, "stretch_p50_seconds": 10}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(table(result))
    summary = result["summary"]
    click.echo(
        f"produce-to-mart latency (every check passed: {summary['all_checks_passed']}): "
        f"p50 {summary['p50']:.1f}s, max {summary['max']:.1f}s; dbt builds per round "
        f"{summary['dbt_builds_per_round']} → {output}"
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

    from olist_dev.bench.dbt import run_dbt_bench, table

    if data_dir is None and synthetic is None:
        data_dir = REPO_ROOT.parent / "shared/data/olist"
    events = event_source(data_dir, synthetic, 42)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_dbt_bench(get_stack_settings(), events, repeat, Path(tmp), click.echo)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(table(result))
    click.echo(f"→ {output}")


@bench.command("scale")
@click.option("--factors", default="1,3,10", show_default=True,
              help="History sizes as multiples of Olist's 99,441 orders (synthetic).")  # fmt: skip
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("bench/results/scale.json"), show_default=True)  # fmt: skip
def bench_scale(factors: str, output: Path) -> None:
    """Replay, ingest and full-build time and peak RSS at each history size, and the per-batch
    step inside a run (+100 orders, +1%)."""
    import json
    import tempfile

    from olist_dev.bench.scale import run_scale_bench, table

    try:
        sizes = [float(f) if "." in f else int(f) for f in factors.split(",")]
    except ValueError:
        fail(f"--factors {factors}: give numbers separated by commas, e.g. 1,3,10")
    with tempfile.TemporaryDirectory() as tmp:
        result = run_scale_bench(get_stack_settings(), sizes, Path(tmp), click.echo)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(table(result))
    click.echo(f"→ {output}")


@bench.command("dashboard")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="The real Olist CSVs [default: ../shared/data/olist].")  # fmt: skip
@click.option("--schema-prefix", default=None, metavar="PREFIX",
              help="Time an existing build (e.g. '' after `make demo`) instead of a sandbox.")  # fmt: skip
@click.option("--repeat", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("bench/results/dashboard.json"), show_default=True)  # fmt: skip
def bench_dashboard(data_dir: Path | None, schema_prefix: str | None, repeat: int,
                    output: Path) -> None:  # fmt: skip
    """Each dashboard query's latency as the read-only role (median of N) on the real history."""
    import json
    import tempfile

    from olist_dev.bench.dashboard import run_dashboard_bench, table

    s = get_stack_settings()
    events = None
    if schema_prefix is not None:
        s = s.model_copy(update={"schema_prefix": schema_prefix})
    else:
        events = event_source(data_dir or REPO_ROOT.parent / "shared/data/olist", None, 42)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_dashboard_bench(s, events, repeat, Path(tmp), click.echo)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(table(result))
    click.echo(f"→ {output}")


@click.group()
def setup() -> None:
    """Set-up beyond the stack (`make test` runs it)."""


@setup.command("browser")
def setup_browser() -> None:
    """Debian's chromium for the browser tests, installed with apt-get when missing."""
    from olist_dev.browser import ensure_chromium
    from olist_dev.stack import StackError

    try:
        click.echo(ensure_chromium())
    except StackError as exc:
        fail(str(exc))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port (default $OLIST_DASHBOARD_PORT or 8501).")  # fmt: skip
def dashboard(host: str, port: int | None) -> None:
    """The live dashboard over the marts (Streamlit), read with the read-only role."""
    from olist_dev.dashboard import streamlit_argv

    if (warning := bind_warning(host, "the dashboard")) is not None:
        click.echo(warning, err=True)
    port = port or get_stack_settings().dashboard_port
    click.echo(
        f"dashboard: http://{host}:{port}  (marts in {get_stack_settings().analytics_schema})"
    )
    argv = streamlit_argv(host, port)
    os.chdir(REPO_ROOT)
    os.execv(argv[0], argv)


for command in (stack, setup, ui, docs, demo, dg_command, bench, dashboard):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `olist` (usage errors: one line, exit 2, as kafka_io's)."""
    return runtime.main(argv, cli)


if __name__ == "__main__":
    sys.exit(main())
