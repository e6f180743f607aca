"""Typed resources. Secrets never pass through Dagster config: `kafka_io`'s settings read them
from the environment; these resources only carry what may differ per deployment or test."""

from __future__ import annotations

import dagster as dg
import psycopg

from kafka_io.consumer import Ingestor
from kafka_io.settings import Settings, get_settings


class OlistIngestResource(dg.ConfigurableResource):
    """Where ingestion reads and writes: topic, consumer group and raw schema.

    Unset fields fall back to the OLIST_* environment (see kafka_io/settings.py).
    """

    topic: str | None = None
    group: str | None = None
    raw_schema: str | None = None
    # Events per poll and per transaction (Ingestor's default); smaller means a stop or a
    # termination is honoured sooner, larger means fewer transactions.
    max_batch: int = 5000

    def settings(self) -> Settings:
        base = get_settings()
        update = {
            "kafka_topic": self.topic or base.kafka_topic,
            "kafka_group": self.group or base.kafka_group,
            "raw_schema": self.raw_schema or base.raw_schema,
        }
        return base.model_copy(update=update)

    def ingestor(self) -> Ingestor:
        return Ingestor(self.settings(), max_batch=self.max_batch)

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.settings().pg_dsn, autocommit=True)


# Dagster pools (dagster.yaml `concurrency.pools.default_limit: 1`): every step that ingests a
# topic for a group, or runs dbt on a warehouse, claims its pool's one slot, whoever started
# the run (sensor, UI, CLI job, schedule, automation). A run tag only guards the runs that carry
# it; a pool is on the step itself.
def ingest_pool(topic: str, group: str) -> str:
    """The pool of the ingestion of ``topic`` by consumer ``group`` (one at a time)."""
    return f"olist/ingest/{topic}/{group}"


def dbt_pool(database: str, schema_prefix: str = "") -> str:
    """The pool of dbt on one warehouse: its database and schema prefix (one build at a time)."""
    return f"olist/dbt/{database}/{schema_prefix or '-'}"


def current_ingest_pool() -> str:
    s = get_settings()
    return ingest_pool(s.kafka_topic, s.kafka_group)


def current_dbt_pool() -> str:
    s = get_settings()
    return dbt_pool(s.pg_database, s.schema_prefix)
