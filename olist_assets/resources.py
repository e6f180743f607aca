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

    def settings(self) -> Settings:
        base = get_settings()
        update = {
            "kafka_topic": self.topic or base.kafka_topic,
            "kafka_group": self.group or base.kafka_group,
            "raw_schema": self.raw_schema or base.raw_schema,
        }
        return base.model_copy(update=update)

    def ingestor(self) -> Ingestor:
        return Ingestor(self.settings())

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.settings().pg_dsn, autocommit=True)
