"""Shared fixtures: the real local stack (PostgreSQL + Kafka), and per-test isolation.

Tests marked ``services`` need `olist stack up` (``make test`` does it). Each test gets its own
schema / topic / consumer group, so tests never see each other's data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from kafka_io.kafka_client import client_config
from kafka_io.settings import get_settings
from olist_dev.settings import StackSettings
from olist_dev.stack.common import unique_name
from olist_dev.stack.postgres import admin_connect, provision_raw_schema

REPO_ROOT = Path(__file__).resolve().parent.parent
OLIST_DATA_DIR = Path(os.environ.get("OLIST_DATA_DIR", REPO_ROOT.parent / "shared/data/olist"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Any test that uses a stack fixture is a `services` test, so `-m "not services"` runs the
    # unit tests alone.
    stack_fixtures = {"settings", "admin_conn", "raw_schema", "kafka_topic", "pg_conn"}
    for item in items:
        if stack_fixtures & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """get_settings() caches per process; a test that changes OLIST_* (monkeypatch) reads its
    own values, and the next test the environment again."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def settings() -> StackSettings:
    """The local stack's settings; fails (never skips) when the stack is not running."""
    from olist_dev.stack import status_lines

    s = StackSettings()
    _, running = status_lines(s)
    if not running and not os.environ.get("OLIST_TEST_EXTERNAL_STACK"):
        pytest.fail("the local stack is not running: run `make up` (or `olist stack up`)")
    return s


@pytest.fixture
def admin_conn(settings: StackSettings) -> Iterator[psycopg.Connection]:
    with admin_connect(settings) as conn:
        yield conn


@pytest.fixture
def raw_schema(settings: StackSettings) -> Iterator[str]:
    """A fresh raw schema with production privileges (owned by the ingestion role)."""
    name = unique_name("t_raw")
    with admin_connect(settings) as conn:
        provision_raw_schema(conn, settings, name)
    yield name
    # A new connection: the test may have restarted the server.
    with admin_connect(settings) as conn:
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(name)))


@pytest.fixture
def kafka_topic(settings: StackSettings) -> Iterator[str]:
    """A fresh topic with 3 partitions, deleted afterwards."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    name = unique_name("t.orders")
    admin = KafkaAdminClient(**client_config(settings))
    admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    try:
        yield name
    finally:
        admin.delete_topics([name])
        admin.close()
