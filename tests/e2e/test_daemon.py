"""End to end with the real webserver + daemon on a PostgreSQL instance: new events reach the
marts with nobody acting (lag sensor → ingestion → dbt), and their checks pass."""

from __future__ import annotations

import pytest

from olist_dev.e2e import E2EPipeline

CHAIN = ["olist_orders_topic", "raw_orders", "stg_orders", "fact_orders", "agg_daily_revenue"]
CHECKED = ["raw_orders", "stg_orders", "fact_orders", "dim_customers", "agg_daily_revenue"]


@pytest.fixture
def e2e(settings, tmp_path):
    with E2EPipeline(settings, tmp_path) as pipeline:
        yield pipeline


def test_graph_from_the_running_webserver(e2e):
    data = e2e.server.graphql(
        "{ assetNodes { assetKey { path } dependencyKeys { path } "
        "assetChecksOrError { ... on AssetChecks { checks { name } } } } }"
    )
    nodes = {n["assetKey"]["path"][-1]: n for n in data["assetNodes"]}
    assert set(CHAIN) | {"dim_customers"} <= set(nodes)

    def upstream(name: str) -> set[str]:
        return {k["path"][-1] for k in nodes[name]["dependencyKeys"]}

    def reaches(up: str, down: str) -> bool:
        return up in upstream(down) or any(reaches(up, mid) for mid in upstream(down))

    for up, down in zip(CHAIN, CHAIN[1:], strict=False):
        assert reaches(up, down), f"no path {up} → {down}"
    assert reaches("fact_orders", "dim_customers")
    for name in CHECKED:
        assert nodes[name]["assetChecksOrError"]["checks"], f"{name} has no checks"


def test_new_events_reach_the_marts_with_nobody_acting(e2e):
    for round_, orders in enumerate((40, 25)):
        e2e.produce(orders, seed=100 + round_)
        e2e.wait_for_marts(timeout=300)
        assert e2e.marts_order_count() == len(e2e.orders)
    # The runs that did it were launched by the sensor, and their checks passed.
    e2e.wait_for_checks(["raw_orders", *CHECKED[1:]])
    for asset in CHECKED:
        statuses = e2e.latest_check_statuses(asset)
        assert statuses and set(statuses.values()) == {"SUCCEEDED"}, (asset, statuses)
    e2e.wait_for_idle()
    results = e2e.runs()
    by_sensor = [
        r for r in results
        if {"key": "dagster/sensor_name", "value": "kafka_lag_sensor"} in r["tags"]
    ]  # fmt: skip
    assert len(by_sensor) >= 2  # one per round at least
    assert {r["status"] for r in by_sensor} == {"SUCCESS"}
    assert "FAILURE" not in {r["status"] for r in results}  # automation runs (dbt_docs) too
