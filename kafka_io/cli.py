"""The runtime command line: replay into Kafka, ingest into PostgreSQL, offset resets.

Usable alone (`python -m kafka_io ...`, as the Docker image runs it); the developer's `olist`
command (olist_dev.cli) adds the local stack, the demo, the UI and the benchmarks to this tree.
"""

from __future__ import annotations

import itertools
import logging
import re
import sys
from pathlib import Path

import click
import psycopg
from kafka.errors import KafkaError
from pydantic import ValidationError

from kafka_io.errors import IngestError, one_line
from kafka_io.kafka_client import kafka_address, kafka_failure
from kafka_io.settings import get_settings, settings_error_line


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Olist real-time analytics: Kafka replay and exactly-once ingestion."""


def fail(message: str, code: int = 1) -> None:
    click.echo(f"olist: error: {message}", err=True)
    sys.exit(code)


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # kafka-python is chatty at INFO/WARNING about reconnects it handles itself.
    logging.getLogger("kafka").setLevel(logging.CRITICAL if not verbose else logging.WARNING)


@cli.command()
@click.option(
    "--data-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory with the Olist CSVs (.csv or .csv.gz).",
)
@click.option(
    "--synthetic",
    type=click.IntRange(min=1),
    metavar="N",
    help="Generate N Olist-shaped synthetic orders instead.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of --synthetic.")
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Time-scale: event-time seconds per wall second (86400 = a day per second). "
    "Default: as fast as possible.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Send at most K events.")
@click.option("--topic", default=None, help="Topic (default $OLIST_KAFKA_TOPIC).")
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=None,
    help="Partitions if the topic is created (default $OLIST_KAFKA_PARTITIONS).",
)
@click.option("-v", "--verbose", is_flag=True)
def replay(data_dir, synthetic, seed, speed, limit, topic, partitions, verbose) -> None:
    """Replay order events into Kafka in event-time order, keyed by order_id."""
    from tqdm import tqdm

    from kafka_io.producer import ReplayError, ensure_topic
    from kafka_io.producer import replay as run_replay

    events = event_source(data_dir, synthetic, seed)
    configure_logging(verbose)
    s = get_settings()
    topic = topic or s.kafka_topic
    try:
        # Read the first event before touching Kafka: a --data-dir without the CSVs must
        # not create the topic on its way to failing.
        events = itertools.chain([next(iter(events))], events)
    except FileNotFoundError as exc:
        fail(f"--data-dir {data_dir}: {exc}")
    except StopIteration:
        events = iter(())
    try:
        if ensure_topic(s, topic, partitions or s.kafka_partitions):
            click.echo(f"created topic {topic}", err=True)
        with tqdm(unit=" events", desc=f"replay → {topic}", disable=None, mininterval=1) as bar:
            stats = run_replay(
                events,
                settings=s,
                topic=topic,
                speed=speed,
                limit=limit,
                progress=bar,
            )
    except IngestError as exc:  # KafkaConfigError: contradicting security settings
        fail(str(exc))
    except (ReplayError, KafkaError) as exc:
        fail(f"Kafka at {kafka_address(s)}: {kafka_failure(exc)}")
    except FileNotFoundError as exc:
        fail(f"--data-dir {data_dir}: {exc}" if data_dir else str(exc))
    click.echo(
        f"replayed {stats.events} events to {topic} in {stats.seconds:.1f}s "
        f"({stats.events_per_second:,.0f} events/s)"
    )


def event_source(data_dir: Path | None, synthetic: int | None, seed: int):
    """Events of the real CSVs in ``data_dir`` or of ``synthetic`` generated orders (lazy)."""
    if (data_dir is None) == (synthetic is None):
        raise click.UsageError("give exactly one of --data-dir DIR or --synthetic N")
    if data_dir is not None:
        from kafka_io.olist_csv import replay_events

        return replay_events(data_dir)
    from kafka_io.synthetic import synthetic_events

    return synthetic_events(synthetic, seed=seed)


# Kafka's rule for topic names (kafka.common.internals.Topic): checked here so a typo is one
# line, not a broker error.
TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names: refuse rather than use another schema


def topic_problem(name: str) -> str | None:
    """Why ``name`` cannot be a Kafka topic, or None."""
    if name in (".", "..") or not TOPIC_NAME.fullmatch(name):
        return "a topic name is 1-249 characters of a-z A-Z 0-9 . _ -"
    return None


def group_problem(name: str) -> str | None:
    """Why ``name`` cannot be our consumer group, or None."""
    if not name.strip():
        return "a consumer group must not be empty or blank"
    if any(not c.isprintable() for c in name) or len(name) > 255:
        return "a consumer group is at most 255 printable characters"
    return None


def schema_problem(name: str) -> str | None:
    """Why ``name`` cannot be our raw schema, or None (whether it exists is checked later)."""
    if not name or len(name.encode()) > MAX_IDENTIFIER or "\0" in name:
        return f"a schema name is 1-{MAX_IDENTIFIER} bytes"
    return None


def _validated(problem):
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None and (why := problem(value)) is not None:
            raise click.BadParameter(f"{value!r}: {why}", ctx=ctx, param=param)
        return value

    return callback


@cli.command()
@click.option(
    "--until-caught-up",
    "mode",
    flag_value="until-caught-up",
    help="Stop once the end offsets seen at start are ingested.",
)
@click.option("--follow", "mode", flag_value="follow", help="Keep consuming until SIGINT/SIGTERM.")
@click.option(
    "--topic",
    default=None,
    callback=_validated(topic_problem),
    help="Topic (default $OLIST_KAFKA_TOPIC).",
)
@click.option(
    "--group",
    default=None,
    callback=_validated(group_problem),
    help="Consumer group (default $OLIST_KAFKA_GROUP).",
)
@click.option(
    "--schema", default=None, callback=_validated(schema_problem), help="Raw schema (default raw)."
)
@click.option("--batch-size", type=click.IntRange(min=1), default=5000, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Consumer processes, each with its share of the partitions [default: CPU count].",
)
@click.option("-v", "--verbose", is_flag=True)
def ingest(mode, topic, group, schema, batch_size, workers, verbose) -> None:
    """Consume the topic into raw.raw_orders exactly once (offsets stored with the rows).

    An outage longer than $OLIST_PG_RETRY_SECONDS / $OLIST_KAFKA_RETRY_SECONDS (default 60)
    ends with exit 1 naming the service (--follow retries forever). A stored offset that
    Kafka's log no longer holds (topic recreated or truncated) ends with exit 1 naming the
    topic, partition and both offsets: see `olist offsets reset`.
    """
    from kafka_io import workers as ingest_workers

    if mode is None:
        raise click.UsageError("give --until-caught-up or --follow")
    configure_logging(verbose)
    s = get_settings()
    try:
        stats = ingest_workers.ingest(
            s,
            workers=workers or ingest_workers.default_workers(),
            topic=topic,
            group=group,
            schema=schema,
            until_caught_up=mode == "until-caught-up",
            max_batch=batch_size,
        )
    except Exception as exc:
        fail_on_service_error(s, exc)
        if not isinstance(exc, ingest_workers.WorkerError):
            raise
        fail(f"ingestion stopped: {one_line(exc)}")
    reasons = ", ".join(f"{k}={v}" for k, v in sorted(stats.rejected_reasons.items())) or "none"
    click.echo(
        f"ingested {stats.messages} messages in {stats.seconds:.1f}s "
        f"({stats.events_per_second:,.0f}/s): {stats.inserted} new events, "
        f"{stats.duplicates} duplicates skipped, {stats.rejected} dead letters ({reasons})"
    )


def fail_on_service_error(s, exc: Exception) -> None:
    """Exit 1 with one line for an error that names its cause or its service; else return."""
    from kafka_io.consumer import pg_address

    if isinstance(exc, IngestError):
        fail(str(exc))
    if isinstance(exc, KafkaError):
        fail(f"Kafka at {kafka_address(s)}: {kafka_failure(exc)}")
    if isinstance(exc, psycopg.Error):
        fail(f"PostgreSQL at {pg_address(s.pg_dsn)}: {one_line(exc)}")


@cli.group()
def offsets() -> None:
    """The consumer's stored offsets: explicit, recorded resets."""


@offsets.command("reset")
@click.option("--topic", default=None, callback=_validated(topic_problem),
              help="Topic (default $OLIST_KAFKA_TOPIC).")  # fmt: skip
@click.option("--group", default=None, callback=_validated(group_problem),
              help="Consumer group (default $OLIST_KAFKA_GROUP).")  # fmt: skip
@click.option("--schema", default=None, callback=_validated(schema_problem),
              help="Raw schema (default raw).")  # fmt: skip
@click.option("--to-log-start", is_flag=True, required=True,
              help="Resume every partition at Kafka's log start, in a new topic epoch.")  # fmt: skip
@click.option("--reason", default="operator reset", show_default=True,
              help="Why, recorded with the reset.")  # fmt: skip
def offsets_reset(topic, group, schema, to_log_start, reason) -> None:
    """After `olist ingest` stopped on an offset mismatch (topic deleted and recreated, or
    records deleted by retention): start a new epoch of the topic at Kafka's log start.

    Recorded in <schema>.topic_epochs and <schema>.offset_resets (who, when, old and new
    offsets), so the accounting stays explainable; rows already stored stay, and events seen
    again count as duplicates. The next `olist ingest` reads the whole log of the new epoch.
    """
    from kafka_io.consumer import reset_to_log_start

    s = get_settings()
    topic, group, schema = topic or s.kafka_topic, group or s.kafka_group, schema or s.raw_schema
    try:
        epoch, changes = reset_to_log_start(s, topic=topic, group=group, schema=schema,
                                            reason=reason)  # fmt: skip
    except Exception as exc:
        fail_on_service_error(s, exc)
        raise
    for partition, old, new in changes:
        click.echo(f"{topic}[{partition}]: next_offset {old if old is not None else 'none'} "
                   f"-> {new} (epoch {epoch})")  # fmt: skip
    click.echo(f"{topic} epoch {epoch} starts at Kafka's log start for group {group}")


def main(argv: list[str] | None = None, group: click.Group = cli) -> int:
    """Entry point: a usage error becomes one line on stderr and exit 2."""
    try:
        group.main(args=argv, prog_name="olist", standalone_mode=False)
    except click.UsageError as exc:
        if isinstance(exc, click.exceptions.NoArgsIsHelpError) and exc.ctx:
            click.echo(exc.ctx.get_help())
        else:
            click.echo(f"olist: error: {exc.format_message()} (see `olist --help`)", err=True)
        return 2
    except ValidationError as exc:  # an OLIST_* variable (or the secrets file) is wrong
        click.echo(f"olist: error: {settings_error_line(exc)}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("olist: interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
