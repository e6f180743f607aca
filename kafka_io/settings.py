"""One settings object per process, read from the environment (``OLIST_*``).

Every environment variable the runtime reads goes through `Settings` (`get_settings()`, cached
per process). Defaults point at the local stack started by ``olist stack up``; the passwords'
defaults are for that throwaway local stack only — set the variables for anything else. The
local stack's own settings (versions, heap, OS user, state folder, superuser) live in the dev
package (`olist_dev.settings.StackSettings`).
"""

from __future__ import annotations

from functools import cache
from urllib.parse import quote

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def pg_dsn(user: str, password: str, host: str, port: int, database: str) -> str:
    """A libpq URI that psql, psycopg and SQLAlchemy all accept."""
    return (
        f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{database}"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OLIST_", extra="ignore", frozen=True)

    # PostgreSQL: one server, a warehouse database and a Dagster database.
    pg_host: str = "127.0.0.1"
    pg_port: int = 55432
    pg_database: str = "olist"
    ingest_user: str = "olist_ingest"
    ingest_password: str = "olist_ingest"
    dbt_user: str = "olist_dbt"
    dbt_password: str = "olist_dbt"
    dagster_pg_database: str = "dagster"
    dagster_pg_user: str = "olist_dagster"
    dagster_pg_password: str = "olist_dagster"
    # Explicit DSN for ingestion; overrides the parts above when set.
    pg_dsn_override: str | None = Field(default=None, validation_alias="OLIST_PG_DSN")
    raw_schema: str = "raw"
    # Prefix of dbt's `staging`/`analytics` schemas (dbt/macros/generate_schema_name.sql reads
    # the same variable): tests and sandboxes build into their own schemas.
    schema_prefix: str = ""
    # How old the newest ingested event may be before raw_orders counts as stale.
    raw_freshness_minutes: float = 60
    # Where `olist docs serve` serves the dbt docs (the assets link there).
    dbt_docs_port: int = 8580

    # Kafka.
    kafka_bootstrap_override: str | None = Field(
        default=None, validation_alias="OLIST_KAFKA_BOOTSTRAP"
    )
    kafka_port: int = 9092
    kafka_topic: str = "olist.orders"
    kafka_group: str = "olist-ingest"
    kafka_partitions: int = 6

    # Bounded retry budgets: past them an outage ends in ServiceUnavailableError (a named
    # failure) instead of a consumer that waits forever. `--follow` ignores them.
    pg_retry_seconds: float = 60
    kafka_retry_seconds: float = 60

    @property
    def pg_dsn(self) -> str:
        """DSN of the ingestion role on the warehouse database."""
        return self.pg_dsn_override or pg_dsn(
            self.ingest_user, self.ingest_password, self.pg_host, self.pg_port, self.pg_database
        )

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap_override or f"127.0.0.1:{self.kafka_port}"

    @property
    def analytics_schema(self) -> str:
        """The marts' schema (dbt's `analytics` with the schema prefix)."""
        return self.schema_prefix + "analytics"

    @property
    def dbt_docs_url(self) -> str:
        return f"http://127.0.0.1:{self.dbt_docs_port}"

    @property
    def dbt_pg_dsn(self) -> str:
        return pg_dsn(
            self.dbt_user, self.dbt_password, self.pg_host, self.pg_port, self.pg_database
        )

    @property
    def dagster_pg_dsn(self) -> str:
        return pg_dsn(
            self.dagster_pg_user,
            self.dagster_pg_password,
            self.pg_host,
            self.pg_port,
            self.dagster_pg_database,
        )


@cache
def get_settings() -> Settings:
    """This process's settings, read once (tests that change the environment call
    ``get_settings.cache_clear()``)."""
    return Settings()
