"""The `olist` command line: local stack, replay into Kafka, ingest into PostgreSQL, benchmarks."""

from __future__ import annotations

import sys

import click

from kafka_io.settings import get_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Olist real-time analytics: local stack, Kafka replay and exactly-once ingestion."""


def fail(message: str, code: int = 1) -> None:
    click.echo(f"olist: error: {message}", err=True)
    sys.exit(code)


@cli.group()
def stack() -> None:
    """The local PostgreSQL + Kafka stack (no Docker); state under .stack/."""


@stack.command("up")
def stack_up() -> None:
    """Start PostgreSQL and Kafka (a no-op when they already run); wait until both answer."""
    from kafka_io.stack import StackError, up

    try:
        for line in up(get_settings()):
            click.echo(line)
    except StackError as exc:
        fail(str(exc))


@stack.command("down")
def stack_down() -> None:
    """Stop Kafka and PostgreSQL by PID; data stays on disk."""
    from kafka_io.stack import StackError, down

    try:
        for line in down(get_settings()):
            click.echo(line)
    except StackError as exc:
        fail(str(exc))


@stack.command("status")
def stack_status() -> None:
    """Print shell-sourceable settings (eval "$(olist stack status)"); exit 1 if not running."""
    from kafka_io.stack import status_lines

    lines, running = status_lines(get_settings())
    click.echo("\n".join(lines))
    sys.exit(0 if running else 1)


def main(argv: list[str] | None = None) -> int:
    """Entry point: a usage error becomes one line on stderr and exit 2."""
    try:
        cli.main(args=argv, prog_name="olist", standalone_mode=False)
    except click.UsageError as exc:
        if isinstance(exc, click.exceptions.NoArgsIsHelpError) and exc.ctx:
            click.echo(exc.ctx.get_help())
        else:
            click.echo(f"olist: error: {exc.format_message()} (see `olist --help`)", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("olist: interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
