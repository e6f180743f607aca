"""One settings object per process, read from the environment (``OLIST_*``).

Defaults point at the local stack started by ``olist stack up``; the passwords' defaults are
for that throwaway local stack only — set the variables for anything else.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


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
    pg_admin_user: str = "olist_admin"
    pg_admin_password: str = "olist_admin"
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

    # Kafka.
    kafka_bootstrap_override: str | None = Field(
        default=None, validation_alias="OLIST_KAFKA_BOOTSTRAP"
    )
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_topic: str = "olist.orders"
    kafka_group: str = "olist-ingest"
    kafka_partitions: int = 6
    kafka_version: str = "4.1.1"
    kafka_heap: str = "512m"

    # Bounded retry budgets: past them an outage ends in ServiceUnavailableError (a named
    # failure) instead of a consumer that waits forever. `--follow` ignores them.
    pg_retry_seconds: float = 60
    kafka_retry_seconds: float = 60

    # Local stack state: one git-ignored folder.
    stack_dir: Path = REPO_ROOT / ".stack"
    # Unprivileged OS user that runs PostgreSQL when we are root.
    pg_os_user: str = "olistpg"

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
    def pg_admin_dsn(self) -> str:
        return self.admin_dsn_for("postgres")

    def admin_dsn_for(self, database: str) -> str:
        """Superuser DSN (local stack set-up, tests and benchmarks only)."""
        return pg_dsn(
            self.pg_admin_user, self.pg_admin_password, self.pg_host, self.pg_port, database
        )

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


def get_settings() -> Settings:
    return Settings()
