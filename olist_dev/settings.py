"""Settings of the local stack only (versions, heap, OS user, state folder, superuser, TLS and
SASL listeners): the runtime never reads them. `StackSettings` extends the runtime `Settings`,
so one object serves the stack, the demo, the benchmarks and the tests. Passwords are unset
until the stack's secrets file (olist_dev.stack.secrets) gives them."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import SecretStr

from kafka_io.settings import DEFAULT_STACK_DIR, Settings

REPO_ROOT = Path(__file__).resolve().parent.parent


class StackSettings(Settings):
    # Superuser of the local stack (set-up, tests and benchmarks only); no default password:
    # `olist stack up` generates one into the secrets file.
    pg_admin_user: str = "olist_admin"
    pg_admin_password: SecretStr | None = None
    # PostgreSQL with TLS (certificate from the stack's CA, olist_dev.stack.tls); off by default.
    pg_tls: bool = False
    # The local broker: controller port, version of the Maven Central jars, heap cap.
    kafka_controller_port: int = 9093
    # Second and third listeners of the local broker: SASL_SSL (PLAIN, SCRAM-SHA-256/512) and
    # SSL with client certificates (mutual TLS), both with the stack CA's certificate.
    kafka_sasl_port: int = 9094
    kafka_mtls_port: int = 9095
    # The SASL user the local broker knows (its password: OLIST_KAFKA_SASL_PASSWORD).
    kafka_stack_user: str = "olist"
    kafka_version: str = "4.1.1"
    kafka_heap: str = "512m"
    # Local stack state: one git-ignored folder (PostgreSQL, Kafka, DAGSTER_HOME, secrets, TLS).
    stack_dir: Path = DEFAULT_STACK_DIR
    # Unprivileged OS user that runs PostgreSQL when we are root.
    pg_os_user: str = "olistpg"

    @property
    def pg_admin_dsn(self) -> str:
        return self.admin_dsn_for("postgres")

    def admin_dsn_for(self, database: str) -> str:
        """Superuser DSN on ``database``."""
        return self.dsn_for(self.pg_admin_user, self.pg_admin_password, database)

    def login_roles(self) -> dict[str, SecretStr | None]:
        """The least-privilege login roles the stack provisions, with their passwords."""
        return {
            self.ingest_user: self.ingest_password,
            self.dbt_user: self.dbt_password,
            self.dagster_pg_user: self.dagster_pg_password,
            self.reader_user: self.reader_password,
        }

    @property
    def tls_dir(self) -> Path:
        return self.stack_dir / "tls"


@cache
def get_stack_settings() -> StackSettings:
    """This process's stack settings, read once from the environment."""
    return StackSettings()
