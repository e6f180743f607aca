"""Marts for the dashboard's browser tests (and for trying the dashboard by hand): the first N
real Olist orders built by dbt into a sandbox (olist_dev/dbt_sandbox.py: own raw schema and
schema prefix), read by a login role of its own with the read-only grants the stack gives
`olist_reader` (the shared role's password is not ours to set). All dropped on exit."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from psycopg import sql
from pydantic import SecretStr

from kafka_io.contract import EventDocument
from kafka_io.olist_csv import OlistOrder, events_in_time_order, read_orders
from olist_dev.dbt_sandbox import DbtSandbox
from olist_dev.settings import StackSettings
from olist_dev.stack.common import unique_name
from olist_dev.stack.postgres import admin_connect, grant_reader_privileges, upsert_login_role

BUILD = ("build", "--exclude-resource-type", "unit_test")


@dataclass
class DashboardMarts:
    sandbox: DbtSandbox
    # The stack's settings pointed at the sandbox's marts and the private reader.
    reader: StackSettings

    def env(self) -> dict[str, str]:
        """The environment a dashboard server over these marts runs with."""
        password = self.reader.reader_password
        assert password is not None
        return {
            **os.environ,
            "OLIST_SCHEMA_PREFIX": self.reader.schema_prefix,
            "OLIST_READER_USER": self.reader.reader_user,
            "OLIST_READER_PASSWORD": password.get_secret_value(),
        }

    def build(self, events: list[EventDocument]) -> None:
        """Load ``events`` and rebuild the marts, as one materialization does."""
        self.sandbox.load(events)
        run = self.sandbox.dbt(*BUILD)
        if run.returncode != 0:
            raise RuntimeError(f"dbt build failed:\n{run.output[-3000:]}")


def first_orders(data_dir: Path, n: int) -> list[OlistOrder]:
    return list(islice(read_orders(data_dir), n))


@contextmanager
def dashboard_marts(settings: StackSettings, work_dir: Path) -> Iterator[DashboardMarts]:
    reader_user, password = unique_name("t_reader"), secrets.token_hex(16)
    reader = settings.model_copy(
        update={"reader_user": reader_user, "reader_password": SecretStr(password)}
    )
    try:
        with DbtSandbox(settings, work_dir) as sandbox:
            reader = reader.model_copy(update={"schema_prefix": sandbox.prefix})
            with admin_connect(settings) as conn:
                upsert_login_role(conn, reader_user, password)
                grant_reader_privileges(conn, reader, reader.analytics_schema)
            yield DashboardMarts(sandbox, reader)
    finally:
        with admin_connect(settings) as conn:
            exists = conn.execute("select 1 from pg_roles where rolname = %s", [reader_user])
            if exists.fetchone():
                role = sql.Identifier(reader_user)
                conn.execute(sql.SQL("drop owned by {}").format(role))
                conn.execute(sql.SQL("drop role {}").format(role))


def events_of(orders: list[OlistOrder]) -> list[EventDocument]:
    return list(events_in_time_order(orders))
