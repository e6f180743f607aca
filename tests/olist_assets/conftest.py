"""An isolated pipeline per test: own topic, consumer group, raw schema and dbt schema prefix,
passed to the code the way production does it (OLIST_* environment variables)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from psycopg import sql

from olist_dev.stack.postgres import provision_dbt_schemas
from tests.conftest import admin_connect, unique_name


@dataclass
class Pipeline:
    topic: str
    group: str
    raw_schema: str
    prefix: str

    @property
    def analytics(self) -> str:
        return f"{self.prefix}analytics"

    def env(self) -> dict[str, str]:
        return {
            "OLIST_KAFKA_TOPIC": self.topic,
            "OLIST_KAFKA_GROUP": self.group,
            "OLIST_RAW_SCHEMA": self.raw_schema,
            "OLIST_SCHEMA_PREFIX": self.prefix,
        }


@pytest.fixture
def pipeline(settings, raw_schema, kafka_topic, monkeypatch) -> Iterator[Pipeline]:
    p = Pipeline(kafka_topic, unique_name("g"), raw_schema, unique_name("t") + "_")
    with admin_connect(settings) as conn:
        # The dbt role creates no schema: its prefixed ones are made for it, as in production.
        provision_dbt_schemas(conn, settings, p.prefix)
    for key, value in p.env().items():
        monkeypatch.setenv(key, value)
    yield p
    with admin_connect(settings) as conn:
        for schema in ("staging", "analytics"):
            conn.execute(
                sql.SQL("drop schema if exists {} cascade").format(
                    sql.Identifier(p.prefix + schema)
                )
            )
