"""The local stack against the real services: idempotent up, Kafka and PostgreSQL round trips,
durability across down/up, and clear failures."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from psycopg import sql

from olist_dev.stack import status_lines
from olist_dev.stack.kafka import Kafka
from olist_dev.stack.postgres import Postgres
from tests.conftest import REPO_ROOT, unique_name

OLIST = [sys.executable, "-m", "olist_dev.cli"]


def run_olist(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*OLIST, *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    futures = [producer.send(topic, key=k, value=v) for k, v in messages]
    producer.flush()
    for future in futures:
        future.get(timeout=10)
    producer.close()


def consume_all(bootstrap: str, topic: str, partitions: int) -> list[tuple[bytes, bytes]]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000
    )
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = [(m.key, m.value) for m in consumer]
    consumer.close()
    return got


def test_up_is_idempotent_when_running(settings):
    pids = (Postgres(settings).pid(), Kafka(settings).pid())
    result = run_olist("stack", "up")
    assert result.returncode == 0, result.stderr
    assert "PostgreSQL already running" in result.stdout
    assert "Kafka already running" in result.stdout
    assert (Postgres(settings).pid(), Kafka(settings).pid()) == pids


def test_status_prints_sourceable_dsns_that_clients_accept(settings):
    result = run_olist("stack", "status")
    assert result.returncode == 0
    # No password anywhere: libpq reads them from the 0600 file status exports as PGPASSFILE.
    passwords = [p.get_secret_value() for p in settings.login_roles().values() if p]
    assert passwords and not any(f":{p}@" in result.stdout for p in passwords)
    env = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in result.stdout.splitlines()
        if not line.startswith("#")
    )
    assert env["OLIST_KAFKA_BOOTSTRAP"] == settings.kafka_bootstrap
    assert "@" in env["OLIST_PG_DSN"] and ":" not in env["OLIST_PG_DSN"].split("@")[0][13:]
    pgpass = Path(env["PGPASSFILE"])
    assert pgpass.stat().st_mode & 0o777 == 0o600
    psql = subprocess.run(
        ["psql", env["OLIST_PG_DSN"], "-tAc", "select current_user"],
        capture_output=True,
        text=True,
        env={**os.environ, "PGPASSFILE": str(pgpass)},
    )
    assert psql.returncode == 0, psql.stderr
    assert psql.stdout.strip() == settings.ingest_user
    admin = KafkaAdminClient(bootstrap_servers=env["OLIST_KAFKA_BOOTSTRAP"])
    brokers = admin.describe_cluster()["brokers"]
    assert [(b["host"], b["port"]) for b in brokers] == [("127.0.0.1", settings.kafka_port)]
    admin.close()


def test_message_produced_to_fresh_topic_is_consumed_back(settings, kafka_topic):
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(50)]
    produce(settings.kafka_bootstrap, kafka_topic, sent)
    assert sorted(consume_all(settings.kafka_bootstrap, kafka_topic, 3)) == sorted(sent)


def test_psycopg_creates_and_drops_a_schema(settings, admin_conn):
    name = unique_name("t_schema")
    admin_conn.execute(sql.SQL("create schema {}").format(sql.Identifier(name)))
    query = "select count(*) from information_schema.schemata where schema_name = %s"
    assert admin_conn.execute(query, [name]).fetchone()[0] == 1
    admin_conn.execute(sql.SQL("drop schema {}").format(sql.Identifier(name)))
    assert admin_conn.execute(query, [name]).fetchone()[0] == 0


def test_ingest_role_cannot_create_schemas(settings):
    # Least privilege: ingestion owns `raw`, nothing more.
    with psycopg.connect(settings.pg_dsn) as conn:
        try:
            conn.execute("create schema t_forbidden")
            raise AssertionError("ingest role could create a schema")
        except psycopg.errors.InsufficientPrivilege:
            pass


def test_down_then_up_keeps_rows_and_messages(settings, raw_schema, kafka_topic):
    table = sql.Identifier(raw_schema, "durable")
    with psycopg.connect(settings.pg_dsn) as conn:
        conn.execute(sql.SQL("create table {} (n int)").format(table))
        conn.execute(sql.SQL("insert into {} select generate_series(1, 1000)").format(table))
    sent = [(b"k", f"m{i}".encode()) for i in range(20)]
    produce(settings.kafka_bootstrap, kafka_topic, sent)

    down = run_olist("stack", "down")
    assert down.returncode == 0, down.stderr
    assert status_lines(settings)[1] is False
    up = run_olist("stack", "up")
    assert up.returncode == 0, up.stderr
    assert "started" in up.stdout

    with psycopg.connect(settings.pg_dsn) as conn:
        assert conn.execute(
            sql.SQL("select count(*), sum(n) from {}").format(table)
        ).fetchone() == (
            1000,
            500500,
        )
    assert sorted(consume_all(settings.kafka_bootstrap, kafka_topic, 3)) == sorted(sent)


def test_up_fails_naming_a_taken_kafka_port(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_olist(
            "stack",
            "up",
            env={
                "OLIST_STACK_DIR": str(tmp_path / "stack"),
                "OLIST_KAFKA_PORT": str(port),
                "OLIST_PG_PORT": str(port + 1 if port < 65535 else port - 1),
            },
        )
    assert result.returncode == 1
    assert f"port {port} (Kafka) is already in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "stack").exists(), "nothing may be started or created on a conflict"


def test_wrong_cli_argument_is_one_line_and_exit_2():
    result = run_olist("stack", "upp")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "olist: error: No such command 'upp'. (see `olist --help`)"
    ]
