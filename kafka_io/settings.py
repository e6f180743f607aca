"""One settings object per process, read from the environment (``OLIST_*``).

Every environment variable the runtime reads goes through `Settings` (`get_settings()`, cached
per process). Defaults point at the local stack started by ``olist stack up``. Passwords have no
defaults: they come from the environment, else from the local stack's 0600 secrets file
(``$OLIST_SECRETS_FILE``, default ``.stack/secrets.env``, a dotenv file of ``OLIST_*`` lines),
else they are unset and libpq looks them up in its password file (``PGPASSFILE``). The local
stack's own settings (versions, heap, OS user, state folder, superuser) live in the dev package
(`olist_dev.settings.StackSettings`).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STACK_DIR = Path(__file__).resolve().parent.parent / ".stack"
SECRETS_FILE_NAME = "secrets.env"
MIB = 1024 * 1024


def default_secrets_file() -> Path:
    """The dotenv file that fills unset ``OLIST_*`` secrets: $OLIST_SECRETS_FILE, else the local
    stack's (``$OLIST_STACK_DIR/secrets.env``). Missing is fine (a deployment sets the env)."""
    explicit = os.environ.get("OLIST_SECRETS_FILE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("OLIST_STACK_DIR") or DEFAULT_STACK_DIR) / SECRETS_FILE_NAME


def secret_value(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def pg_dsn(
    user: str,
    password: str | None,
    host: str,
    port: int,
    database: str,
    params: dict[str, str] | None = None,
) -> str:
    """A libpq URI that psql, psycopg and SQLAlchemy all accept. Without a password libpq reads
    its password file (PGPASSFILE); ``params`` (sslmode, sslrootcert) go in the query string."""
    userinfo = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    query = f"?{urlencode(params, quote_via=quote)}" if params else ""
    return f"postgresql://{userinfo}@{host}:{port}/{quote(database, safe='')}{query}"


def without_password(dsn: str) -> str:
    """``dsn`` with any password removed: what may be printed or logged."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc}"))


def settings_error_line(exc: ValidationError) -> str:
    """One line naming each ``OLIST_*`` variable the settings refused and why; never the value
    (it may be a secret)."""
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        variable = name if name.startswith("OLIST_") else f"OLIST_{name.upper()}"
        problems.append(f"{variable}: {error['msg']}")
    return "; ".join(problems)


KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
PgSslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OLIST_", extra="ignore", frozen=True)

    def __init__(self, **values):
        # Read at construction, not import, so a test's OLIST_STACK_DIR / OLIST_SECRETS_FILE count.
        values.setdefault("_env_file", default_secrets_file())
        super().__init__(**values)

    # PostgreSQL: one server, a warehouse database and a Dagster database.
    pg_host: str = "127.0.0.1"
    pg_port: int = 55432
    pg_database: str = "olist"
    ingest_user: str = "olist_ingest"
    ingest_password: SecretStr | None = None
    dbt_user: str = "olist_dbt"
    dbt_password: SecretStr | None = None
    # The dashboard's role: SELECT on the marts (analytics) only.
    reader_user: str = "olist_reader"
    reader_password: SecretStr | None = None
    dagster_pg_database: str = "dagster"
    dagster_pg_user: str = "olist_dagster"
    dagster_pg_password: SecretStr | None = None
    # TLS to PostgreSQL for every role (ingestion, dbt, Dagster's storage): libpq's sslmode
    # (verify-full checks the certificate and the host name) and the CA that signed the server.
    pg_sslmode: PgSslMode = "prefer"
    pg_sslrootcert: str | None = None
    # Explicit DSN for ingestion; overrides the parts above when set.
    pg_dsn_override: str | None = Field(default=None, validation_alias="OLIST_PG_DSN")
    raw_schema: str = "raw"
    # Prefix of dbt's `staging`/`analytics` schemas (dbt/macros/generate_schema_name.sql reads
    # the same variable): tests and sandboxes build into their own schemas.
    schema_prefix: str = ""
    # dbt runs in the run worker's process (olist_assets/lib/dbt_resource.py); false: as a
    # `dbt` subprocess, as dagster-dbt runs it by default.
    dbt_in_process: bool = True
    # How long one tick of the Kafka-lag sensor keeps watching for lag (asking every 0.25 s)
    # before it skips: events arriving then start a run at once instead of at the next tick of
    # the sensor daemon's ~5 s loop. 0: one look per tick.
    lag_sensor_wait_seconds: float = Field(default=4, ge=0, le=30)
    # How old the newest ingested event may be before raw_orders counts as stale.
    raw_freshness_minutes: float = 60
    # Where `olist docs serve` serves the dbt docs (the assets link there).
    dbt_docs_port: int = 8580
    # Where the dashboard (olist_dashboard, `olist dashboard`) serves; the lineage links there.
    dashboard_port: int = 8501

    # Kafka.
    kafka_bootstrap_override: str | None = Field(
        default=None, validation_alias="OLIST_KAFKA_BOOTSTRAP"
    )
    kafka_port: int = 9092
    kafka_topic: str = "olist.orders"
    kafka_group: str = "olist-ingest"
    kafka_partitions: int = 6
    # Kafka security, passed to every client (kafka_io.kafka_client.client_config): SASL_SSL +
    # PLAIN (Confluent Cloud), SASL_SSL + SCRAM-SHA-512 (MSK), SSL with a client certificate
    # (Aiven). Files are PEM.
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_ssl_check_hostname: bool = True
    # What one consumer may hold fetched from Kafka and not yet polled, in all and per partition
    # (Kafka's fetch.max.bytes / max.partition.fetch.bytes): it bounds the consumer's memory
    # whatever the topic holds, since kafka-python keeps every fetched record as a Python object.
    # At least 1 MiB, so the largest message the contract accepts fits in one fetch.
    kafka_fetch_max_bytes: int = Field(default=8 * MIB, ge=MIB)
    kafka_max_partition_fetch_bytes: int = Field(default=1 * MIB, ge=MIB)

    # Bounded retry budgets: past them an outage ends in ServiceUnavailableError (a named
    # failure) instead of a consumer that waits forever. `--follow` ignores them.
    pg_retry_seconds: float = 60
    kafka_retry_seconds: float = 60

    @property
    def pg_ssl_params(self) -> dict[str, str]:
        """libpq's TLS parameters, the same for every role."""
        params = {"sslmode": self.pg_sslmode}
        if self.pg_sslrootcert:
            params["sslrootcert"] = self.pg_sslrootcert
        return params

    def dsn_for(self, user: str, password: SecretStr | None, database: str) -> str:
        """The one place DSNs are built: ``user`` on ``database`` of this server, with TLS."""
        return pg_dsn(
            user,
            secret_value(password),
            self.pg_host,
            self.pg_port,
            database,
            self.pg_ssl_params,
        )

    @property
    def pg_dsn(self) -> str:
        """DSN of the ingestion role on the warehouse database."""
        return self.pg_dsn_override or self.dsn_for(
            self.ingest_user, self.ingest_password, self.pg_database
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
        return self.dsn_for(self.dbt_user, self.dbt_password, self.pg_database)

    @property
    def reader_pg_dsn(self) -> str:
        """DSN of the read-only role (the dashboard): it can read the marts and nothing else."""
        return self.dsn_for(self.reader_user, self.reader_password, self.pg_database)

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def dagster_pg_dsn(self) -> str:
        return self.dsn_for(
            self.dagster_pg_user, self.dagster_pg_password, self.dagster_pg_database
        )

    def dbt_env(self) -> dict[str, str]:
        """What dbt/profiles.yml reads, for a dbt subprocess (an unset password stays unset:
        libpq then reads PGPASSFILE)."""
        env = {
            "OLIST_PG_HOST": self.pg_host,
            "OLIST_PG_PORT": str(self.pg_port),
            "OLIST_PG_DATABASE": self.pg_database,
            "OLIST_DBT_USER": self.dbt_user,
            "OLIST_PG_SSLMODE": self.pg_sslmode,
            "OLIST_PG_SSLROOTCERT": self.pg_sslrootcert or "",
        }
        if self.dbt_password is not None:
            env["OLIST_DBT_PASSWORD"] = self.dbt_password.get_secret_value()
        return env

    def dagster_storage_env(self) -> dict[str, str]:
        """What dagster.yaml's storage reads. Its `params` are not env-resolvable, so TLS goes
        through libpq's own PGSSLMODE / PGSSLROOTCERT (psycopg2 under SQLAlchemy reads them)."""
        env = {
            "OLIST_PG_HOST": self.pg_host,
            "OLIST_PG_PORT": str(self.pg_port),
            "OLIST_DAGSTER_PG_DATABASE": self.dagster_pg_database,
            "OLIST_DAGSTER_PG_USER": self.dagster_pg_user,
            "OLIST_DAGSTER_PG_PASSWORD": secret_value(self.dagster_pg_password) or "",
            "PGSSLMODE": self.pg_sslmode,
        }
        if self.pg_sslrootcert:
            env["PGSSLROOTCERT"] = self.pg_sslrootcert
        return env


@cache
def get_settings() -> Settings:
    """This process's settings, read once (tests that change the environment call
    ``get_settings.cache_clear()``)."""
    return Settings()
