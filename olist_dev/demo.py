"""`olist demo`: replay events into Kafka, materialize the whole graph (with every check) on the
PostgreSQL-backed Dagster instance, and print what a person wants to see."""

from __future__ import annotations

import os
from collections.abc import Iterable

import click
import dagster as dg
import psycopg
from psycopg import sql
from tqdm import tqdm

from kafka_io.producer import ensure_topic, replay
from olist_assets.lib.marts import top_states
from olist_dev.datasets import Dataset, claim, held_dataset, marts_line, reset
from olist_dev.instance import dagster_env
from olist_dev.settings import StackSettings

RECENT_RUNS_SQL = "select run_id, status, create_timestamp from runs order by id desc limit 5"


def materialize_all(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """Every materializable asset of the code location, with its checks, in one run."""
    from olist_assets.definitions import defs

    job = defs().resolve_implicit_global_asset_job_def()
    # Step-by-step DEBUG lines would drown the summary; warnings and errors still show.
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    return job.execute_in_process(instance=instance, run_config=quiet, raise_on_error=False)


def mart_summary(settings: StackSettings) -> tuple[int, int, list[tuple]]:
    """Orders, customers, and the top states by revenue."""
    schema = settings.analytics_schema
    with psycopg.connect(settings.dbt_pg_dsn) as conn:
        (orders,) = conn.execute(
            sql.SQL("select count(*) from {}").format(sql.Identifier(schema, "fact_orders"))
        ).fetchone()
        (customers,) = conn.execute(
            sql.SQL("select count(*) from {}").format(sql.Identifier(schema, "dim_customers"))
        ).fetchone()
    return orders, customers, top_states(settings)


def run_demo(
    settings: StackSettings, events: Iterable[dict], dataset: Dataset, *, start_empty: bool = False
) -> bool:
    """True when every run step and every ERROR-severity check passed. DatasetError, before
    anything is written, when the warehouse holds another dataset (and not ``start_empty``)."""
    if start_empty:
        click.echo("0/3 --reset: starting from empty")
        for line in reset(settings):
            click.echo(f"    {line}")
    claim(settings, dataset)
    click.echo(f"1/3 replaying {dataset.label} into Kafka topic {settings.kafka_topic}")
    ensure_topic(settings, settings.kafka_topic, settings.kafka_partitions)
    with tqdm(unit=" events", mininterval=1, disable=None) as bar:
        stats = replay(events, settings=settings, topic=settings.kafka_topic, progress=bar)
    click.echo(
        f"    {stats.events:,} events in {stats.seconds:.1f}s ({stats.events_per_second:,.0f}/s)"
    )

    click.echo("2/3 materializing the asset graph (ingest → dbt build → docs) with its checks")
    os.environ.update(dagster_env(settings))
    with dg.DagsterInstance.get() as instance:
        result = materialize_all(instance)
    checks = result.get_asset_check_evaluations()
    failed = [c for c in checks if not c.passed]
    raw = next(
        (m for m in result.get_asset_materialization_events()
         if m.asset_key == dg.AssetKey("raw_orders")),
        None,
    )  # fmt: skip
    raw_meta = raw.materialization.metadata if raw else {}

    click.echo("3/3 summary")
    orders, customers, top = mart_summary(settings)
    value = lambda key: raw_meta[key].value if key in raw_meta else "?"  # noqa: E731
    click.echo(
        f"    events ingested: {value('events_ingested'):,} new, {value('duplicates'):,} "
        f"duplicates, {value('dead_letters'):,} dead letters; raw rows: {value('dagster/row_count'):,}"
    )
    click.echo(f"    {marts_line(held_dataset(settings), orders, customers)}")
    click.echo("    revenue by top states:")
    click.echo(f"      {'state':<6}{'orders':>10}{'revenue (BRL)':>18}{'avg order':>12}")
    for state, n, revenue, avg in top:
        click.echo(f"      {state:<6}{n:>10,}{revenue:>18,.2f}{avg or 0:>12,.2f}")
    click.echo(f"    checks: {len(checks) - len(failed)} passed, {len(failed)} failed")
    for check in failed:
        click.echo(
            f"      FAILED [{check.severity.value}] {check.asset_key.to_user_string()}:"
            f"{check.check_name}"
        )
    click.echo(f"    run {result.run_id} is in the Dagster database; see it with:")
    click.echo('      eval "$(.venv/bin/olist stack status)"')
    click.echo(f'      psql "$OLIST_DAGSTER_PG_DSN" -c "{RECENT_RUNS_SQL}"')
    click.echo("    open the UI: make dev  →  http://127.0.0.1:3000  (dbt docs: make docs)")
    errors = [c for c in failed if c.severity == dg.AssetCheckSeverity.ERROR]
    return result.success and not errors
