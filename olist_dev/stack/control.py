"""`olist stack up | down | status`: both services together."""

from __future__ import annotations

from olist_dev.settings import StackSettings
from olist_dev.stack.kafka import Kafka
from olist_dev.stack.postgres import Postgres


def up(settings: StackSettings) -> list[str]:
    services = [Postgres(settings), Kafka(settings)]
    # Check every port before starting anything, so a conflict leaves nothing half-started.
    for service in services:
        if not service.running():
            service.check_ports()
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    return [service.up() for service in services]


def down(settings: StackSettings) -> list[str]:
    return [Kafka(settings).down(), Postgres(settings).down()]


def status_lines(settings: StackSettings) -> tuple[list[str], bool]:
    """Shell-sourceable lines (``eval "$(olist stack status)"``) and whether all is running."""
    pg, kafka = Postgres(settings), Kafka(settings)
    lines = [
        f"# postgres: {'running pid ' + str(pg.pid()) if pg.running() else 'stopped'}",
        f"# kafka: {'running pid ' + str(kafka.pid()) if kafka.running() else 'stopped'}",
        f"OLIST_PG_DSN={settings.pg_dsn}",
        f"OLIST_PG_ADMIN_DSN={settings.pg_admin_dsn}",
        f"OLIST_DBT_PG_DSN={settings.dbt_pg_dsn}",
        f"OLIST_DAGSTER_PG_DSN={settings.dagster_pg_dsn}",
        f"OLIST_KAFKA_BOOTSTRAP={settings.kafka_bootstrap}",
        f"OLIST_KAFKA_TOPIC={settings.kafka_topic}",
    ]
    return lines, pg.running() and kafka.running()
