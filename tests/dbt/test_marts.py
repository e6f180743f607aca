"""The marts, built by `dbt build` from events of a sample of real orders, equal the same
metrics computed in Python from the Olist CSVs, to the cent."""

from __future__ import annotations

import pytest

from tests.dbt.expected_marts import (
    expected_agg_daily_revenue,
    expected_dim_customers,
    expected_fact_orders,
    sample_orders,
)

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def sample(olist_data):
    return sample_orders(olist_data)


@pytest.fixture(scope="module")
def built(module_dbt_env, events_of, sample):
    module_dbt_env.load(events_of(sample))
    run = module_dbt_env.dbt("build", check=False)
    return module_dbt_env, run


@pytest.fixture(scope="module")
def expected_facts(olist_data, sample):
    return expected_fact_orders(sample, olist_data)


def test_dbt_build_passes_every_test(built):
    _, run = built
    assert run.returncode == 0, run.output[-6000:]
    statuses = {(r["unique_id"].split(".")[0], r["status"]) for r in run.results}
    assert statuses <= {
        ("model", "success"),
        ("test", "pass"),
        ("unit_test", "pass"),
        ("operation", "success"),
    }, statuses
    kinds = {r["unique_id"].split(".")[0] for r in run.results}
    assert {"model", "test", "unit_test"} <= kinds


def test_sample_covers_the_quirks(expected_facts):
    facts = expected_facts.values()
    assert len(expected_facts) > 3000
    assert any(f["item_count"] == 0 for f in facts)
    assert any(f["payment_count"] == 0 for f in facts)
    assert {"canceled", "unavailable", "delivered", "shipped"} <= {f["order_status"] for f in facts}
    assert any(
        f["delivered_carrier_at"] and f["delivered_carrier_at"] < f["purchased_at"] for f in facts
    )


def test_dbt_builds_as_the_dbt_role(built, settings):
    env, _ = built
    owners = env.rows(
        "select nspname, pg_get_userbyid(nspowner) as owner from pg_namespace"
        " where nspname = any(%s)",
        ([env.schema("staging"), env.schema("analytics")],),
    )
    assert {r["owner"] for r in owners} == {settings.dbt_user}, owners
    assert len(owners) == 2


def test_fact_orders_match_csv(built, expected_facts):
    env, _ = built
    actual = {row["order_id"]: row for row in env.table("fact_orders")}
    assert actual.keys() == expected_facts.keys()
    mismatches = [
        (order_id, actual[order_id], expected)
        for order_id, expected in expected_facts.items()
        if actual[order_id] != expected
    ]
    assert not mismatches, mismatches[:3]


def test_dim_customers_match_csv(built, expected_facts, olist_data):
    env, _ = built
    expected = expected_dim_customers(expected_facts, olist_data)
    actual = {row["customer_unique_id"]: row for row in env.table("dim_customers")}
    assert actual.keys() == expected.keys()
    assert max(c["total_orders"] for c in expected.values()) >= 3
    mismatches = [(k, actual[k], v) for k, v in expected.items() if actual[k] != v]
    assert not mismatches, mismatches[:3]


def test_agg_daily_revenue_match_csv(built, expected_facts):
    env, _ = built
    expected = expected_agg_daily_revenue(expected_facts)
    actual = {(r["order_date"], r["customer_state"]): r for r in env.table("agg_daily_revenue")}
    assert actual.keys() == expected.keys()
    mismatches = [(k, actual[k], v) for k, v in expected.items() if actual[k] != v]
    assert not mismatches, mismatches[:3]
