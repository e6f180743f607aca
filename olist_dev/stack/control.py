"""`olist stack up | down | status`: both services together."""

from __future__ import annotations

import shlex

from kafka_io.settings import without_password
from olist_dev.settings import StackSettings
from olist_dev.stack.kafka import Kafka
from olist_dev.stack.postgres import Postgres
from olist_dev.stack.secrets import ensure_secrets, pgpass_path, secrets_path, write_pgpass


def up(settings: StackSettings) -> list[str]:
    # Passwords first, in memory: the listeners depend on them, and a port conflict must leave
    # nothing created.
    settings = ensure_secrets(settings, write=False)
    services = [Postgres(settings), Kafka(settings)]
    # Check every port before starting anything, so a conflict leaves nothing half-started.
    for service in services:
        if not service.running():
            service.check_ports()
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    settings = ensure_secrets(settings)
    write_pgpass(settings)
    return [service.up() for service in services]


def down(settings: StackSettings) -> list[str]:
    return [Kafka(settings).down(), Postgres(settings).down()]


def status_lines(settings: StackSettings) -> tuple[list[str], bool]:
    """Shell-sourceable lines (``eval "$(olist stack status)"``) and whether all is running.

    No password is printed: DSNs carry none, and libpq finds them in the stack's 0600 password
    file (PGPASSFILE); the Kafka SASL password is in the secrets file."""
    pg, kafka = Postgres(settings), Kafka(settings)
    values = {
        "OLIST_PG_DSN": settings.pg_dsn,
        "OLIST_PG_ADMIN_DSN": settings.pg_admin_dsn,
        "OLIST_DBT_PG_DSN": settings.dbt_pg_dsn,
        "OLIST_DAGSTER_PG_DSN": settings.dagster_pg_dsn,
        "OLIST_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "OLIST_KAFKA_TOPIC": settings.kafka_topic,
    }
    lines = [
        f"# postgres: {'running pid ' + str(pg.pid()) if pg.running() else 'stopped'}",
        f"# kafka: {'running pid ' + str(kafka.pid()) if kafka.running() else 'stopped'}",
        f"# passwords: {secrets_path(settings)} (0600)",
        f"# Kafka SASL_SSL: 127.0.0.1:{settings.kafka_sasl_port} as {settings.kafka_stack_user} "
        f"(PLAIN, SCRAM-SHA-256/512); mutual TLS: 127.0.0.1:{settings.kafka_mtls_port}; "
        f"CA: {settings.tls_dir / 'ca.crt'}",
        *(f"{key}={shlex.quote(without_password(value))}" for key, value in values.items()),
        f"export PGPASSFILE={shlex.quote(str(pgpass_path(settings)))}",
    ]
    return lines, pg.running() and kafka.running()
