"""Settings of the local stack only (versions, heap, OS user, state folder, superuser): the
runtime never reads them. `StackSettings` extends the runtime `Settings`, so one object serves
the stack, the demo, the benchmarks and the tests."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from kafka_io.settings import Settings, pg_dsn

REPO_ROOT = Path(__file__).resolve().parent.parent


class StackSettings(Settings):
    # Superuser of the local stack (set-up, tests and benchmarks only).
    pg_admin_user: str = "olist_admin"
    pg_admin_password: str = "olist_admin"
    # The local broker: controller port, version of the Maven Central jars, heap cap.
    kafka_controller_port: int = 9093
    kafka_version: str = "4.1.1"
    kafka_heap: str = "512m"
    # Local stack state: one git-ignored folder (PostgreSQL, Kafka, DAGSTER_HOME).
    stack_dir: Path = REPO_ROOT / ".stack"
    # Unprivileged OS user that runs PostgreSQL when we are root.
    pg_os_user: str = "olistpg"

    @property
    def pg_admin_dsn(self) -> str:
        return self.admin_dsn_for("postgres")

    def admin_dsn_for(self, database: str) -> str:
        """Superuser DSN on ``database``."""
        return pg_dsn(
            self.pg_admin_user, self.pg_admin_password, self.pg_host, self.pg_port, database
        )


@cache
def get_stack_settings() -> StackSettings:
    """This process's stack settings, read once from the environment."""
    return StackSettings()
