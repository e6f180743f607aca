"""A private, throwaway PostgreSQL + Kafka for tests that stop, kill or restart a server.

Other people's tests run on the shared local stack (55432/9092) at the same time: a fault test
must never touch it. This stack is built with olist_dev.stack's own classes from a copy of the
settings with free ports and its own state directory, so it is provisioned exactly like the
real one (roles, databases, raw schema), and it is stopped by PID at the end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import time
from pathlib import Path

import psycopg
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from pydantic import SecretStr

from kafka_io.kafka_client import client_config
from olist_dev.settings import StackSettings
from olist_dev.stack.common import StackError, pid_alive, port_in_use, wait_until
from olist_dev.stack.kafka import MARKER as KAFKA_MARKER
from olist_dev.stack.kafka import Kafka
from olist_dev.stack.postgres import Postgres, admin_connect, provision_raw_schema


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on now (bound together, so they are distinct)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def private_settings(base: StackSettings, stack_dir: Path) -> StackSettings:
    """``base`` moved to free ports and ``stack_dir``; explicit DSN/bootstrap overrides (from
    the environment) are dropped, or they would still point at the shared stack."""
    pg_port, kafka_port, controller_port, sasl_port, mtls_port = free_ports(5)
    return base.model_copy(
        update={
            "pg_port": pg_port,
            "kafka_port": kafka_port,
            "kafka_controller_port": controller_port,
            "kafka_sasl_port": sasl_port,
            "kafka_mtls_port": mtls_port,
            # TLS on (its own CA under stack_dir) and a SASL user, for tests/kafka_io/test_security.py.
            "pg_tls": True,
            "kafka_sasl_password": base.kafka_sasl_password or SecretStr(secrets.token_urlsafe(24)),
            "stack_dir": stack_dir,
            "pg_dsn_override": None,
            "kafka_bootstrap_override": None,
            "kafka_heap": "384m",
        }
    )


def env_for(settings: StackSettings) -> dict[str, str]:
    """Environment for an `olist` subprocess that must use ``settings``' services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLIST_")}
    env.update(
        OLIST_PG_DSN=settings.pg_dsn,
        OLIST_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        OLIST_PG_RETRY_SECONDS=f"{settings.pg_retry_seconds:g}",
        OLIST_KAFKA_RETRY_SECONDS=f"{settings.kafka_retry_seconds:g}",
    )
    return env


class PrivateStack:
    """One PostgreSQL and one single-node KRaft broker, with stop/kill/start helpers."""

    def __init__(self, base: StackSettings, stack_dir: Path):
        self.settings = private_settings(base, stack_dir)
        self.pg = Postgres(self.settings)
        self.kafka = Kafka(self.settings)
        # Reuse the jar list the shared stack resolved (reading a file, nothing else): no
        # Maven run per test session.
        shared = Kafka(base).classpath_file
        if shared.exists() and not self.kafka.classpath_file.exists():
            self.kafka.root.mkdir(parents=True, exist_ok=True)
            shutil.copy(shared, self.kafka.classpath_file)

    def start(self) -> None:
        self.start_postgres()
        self.start_kafka()

    def close(self) -> None:
        """Stop both by PID (never by name)."""
        for stop in (self.kill_kafka, self.pg.down):
            with contextlib.suppress(StackError):  # stop the other one all the same
                stop()

    # --- PostgreSQL ------------------------------------------------------------------------
    def start_postgres(self) -> None:
        """Start (after a crash: recover) and wait until it takes connections."""
        self.pg.up()
        if not wait_until(self._pg_answers, timeout=60, interval=0.2):
            raise StackError(f"private PostgreSQL on {self.settings.pg_port} does not answer")

    def crash_postgres(self) -> None:
        """`pg_ctl stop -m immediate`: no checkpoint, every backend gone (crash recovery on
        the next start), the way a power cut or OOM kill would leave it."""
        self.pg.down(mode="immediate")

    def _pg_answers(self) -> bool:
        try:
            with psycopg.connect(self.settings.pg_dsn, connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    def new_schema(self, name: str) -> str:
        with admin_connect(self.settings) as conn:
            provision_raw_schema(conn, self.settings, name)
        return name

    # --- Kafka -----------------------------------------------------------------------------
    def start_kafka(self) -> None:
        """Start and wait until the broker answers metadata requests (Kafka.up does)."""
        self.kafka.up()

    def kill_kafka(self) -> None:
        """SIGKILL the broker (no controlled shutdown) and wait until it is gone."""
        pid = self.kafka.pid()
        if pid_alive(pid, KAFKA_MARKER):
            os.kill(pid, signal.SIGKILL)
            # The JVM's command line goes before its sockets do: wait for both.
            ports = (self.settings.kafka_port, self.settings.kafka_controller_port)
            if not wait_until(
                lambda: not pid_alive(pid, KAFKA_MARKER) and not any(map(port_in_use, ports)),
                15,
                0.1,
            ):
                raise StackError(f"private Kafka pid {pid} survived SIGKILL")
        self.kafka.pid_file.unlink(missing_ok=True)

    def new_topic(self, name: str, partitions: int) -> str:
        admin = KafkaAdminClient(**client_config(self.settings))
        try:
            admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        finally:
            admin.close()
        # Metadata spreads asynchronously: a consumer asking at once may not see the topic.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            admin = KafkaAdminClient(**client_config(self.settings))
            try:
                if name in admin.list_topics():
                    return name
            finally:
                admin.close()
            time.sleep(0.2)
        raise StackError(f"topic {name} not visible on the private broker after 30s")
