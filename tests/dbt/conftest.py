"""Fixtures for the dbt project tests, on the real local stack with production privileges.

Each test gets its own raw schema (owned by the ingestion role, readable by the dbt role, its
tables created by the project's migration) and its own schema prefix for dbt's `staging` and
`analytics`. Events come from the project's Olist replay (`kafka_io.olist_csv`) and are
written to raw_orders by the ingestion role exactly as the consumer stores them. dbt runs as
the dbt role. Every schema a test creates is dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest

from kafka_io.contract import EventDocument
from kafka_io.olist_csv import OlistOrder, events_in_time_order, read_orders
from olist_dev.dbt_sandbox import DbtRun, DbtSandbox
from tests.conftest import OLIST_DATA_DIR
from tests.dbt.expected_marts import OlistData, read_olist


class DbtEnv(DbtSandbox):
    """The shared sandbox (olist_dev/dbt_sandbox.py); a failed dbt run fails the test
    unless `check=False`."""

    def dbt(self, *args: str, prefix: str | None = None, check: bool = True) -> DbtRun:
        run = super().dbt(*args, prefix=prefix)
        if check and run.returncode != 0:
            pytest.fail(f"dbt {' '.join(args)} failed:\n{run.output[-6000:]}")
        return run


def _require_data() -> None:
    if not (OLIST_DATA_DIR / "olist_orders_dataset.csv.gz").exists():
        pytest.fail(f"Olist data not found at {OLIST_DATA_DIR} (set OLIST_DATA_DIR)")


@pytest.fixture(scope="session")
def olist_data() -> OlistData:
    """The Olist CSV rows, for the independent expected values."""
    _require_data()
    return read_olist(OLIST_DATA_DIR)


@pytest.fixture(scope="session")
def olist_orders() -> list[OlistOrder]:
    """Every order as the project's replay reads it, in purchase-time order."""
    _require_data()
    return list(read_orders(OLIST_DATA_DIR))


@pytest.fixture(scope="session")
def events_of(olist_orders):
    """The project's events of the given orders (CSV rows or ids), in event-time order."""

    def events(orders: Iterable[dict[str, str] | str]) -> list[EventDocument]:
        ids = {o if isinstance(o, str) else o["order_id"] for o in orders}
        return list(events_in_time_order(o for o in olist_orders if o.order_id in ids))

    return events


@pytest.fixture
def dbt_env(settings, tmp_path) -> Iterator[DbtEnv]:
    env = DbtEnv(settings, tmp_path)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture(scope="module")
def module_dbt_env(settings, tmp_path_factory) -> Iterator[DbtEnv]:
    env = DbtEnv(settings, tmp_path_factory.mktemp("dbt"))
    try:
        yield env
    finally:
        env.close()
