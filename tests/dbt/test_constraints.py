"""The row-level invariants of the models are contract constraints (not null, checks), not
test nodes: PostgreSQL refuses a violating row whoever writes it. Every constraint declared
in the models' yml is shown here to refuse a row, written as the dbt role into tables built
by a first and then an incremental build (so the incremental delete+insert keeps them), and
a build over a raw event that violates one fails naming it."""

from __future__ import annotations

import copy
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import errors, sql

from olist_assets.lib.dbt_project import DBT_PROJECT_DIR
from tests.dbt.expected_marts import sample_orders

pytestmark = pytest.mark.services

LAYERS = {"int_orders_latest": "staging"}
# A key no built row has, so that a copied row trips only the constraint under test.
FRESH_KEY = {
    "int_orders_latest": {"order_id": "'violator-order'"},
    "fact_orders": {"order_id": "'violator-order'"},
    "dim_customers": {"customer_unique_id": "'violator-customer'"},
    "agg_daily_revenue": {"customer_state": "'ZZ'"},
}
# Per check constraint: the row to copy (a filter) and the column values that break it.
CHECK_VIOLATIONS = {
    "fact_orders_order_value_is_price_plus_freight": ("true", {"order_value": "order_value + 1"}),
    "fact_orders_money_non_negative": ("true", {"total_payment": "-0.01"}),
    "fact_orders_counts_non_negative": ("true", {"payment_count": "-1"}),
    "fact_orders_delivery_fields_null_together": (
        "delivered_customer_at is not null",
        {"delivered_customer_at": "null"},
    ),
    "fact_orders_order_status_accepted": ("true", {"order_status": "'lost'"}),
    "dim_customers_totals_consistent": ("true", {"total_orders": "0"}),
    "agg_daily_revenue_counts_consistent": ("true", {"canceled_count": "order_count + 1"}),
    "agg_daily_revenue_money_non_negative": ("true", {"total_freight": "-0.01"}),
    "agg_daily_revenue_avg_null_without_revenue": (
        "revenue_order_count > 0",
        {"avg_order_value": "null"},
    ),
}


def declared_constraints(project_dir: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(model, column) of every not_null constraint and (model, name) of every check
    constraint in the models' yml files."""
    not_null, checks = [], []
    for path in sorted((project_dir / "models").rglob("*.yml")):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            for constraint in model.get("constraints", []):
                if constraint["type"] == "check":
                    checks.append((model["name"], constraint["name"]))
            for column in model.get("columns", []):
                for constraint in column.get("constraints", []):
                    if constraint["type"] == "not_null":
                        not_null.append((model["name"], column["name"]))
    return not_null, checks


NOT_NULL, CHECKS = declared_constraints(DBT_PROJECT_DIR)


def test_every_check_constraint_has_a_violation_case():
    assert {name for _, name in CHECKS} == set(CHECK_VIOLATIONS)
    # The invariants the tests used to cover are all still declared.
    assert len(NOT_NULL) == 31
    assert {model for model, _ in NOT_NULL} == set(FRESH_KEY)


@pytest.fixture(scope="module")
def built(module_dbt_env, olist_data, events_of, settings):
    """Tables built by a first build and an incremental one, and a dbt-role connection."""
    events = events_of(sample_orders(olist_data, first=200))
    half = len(events) // 2
    module_dbt_env.load(events[:half])
    module_dbt_env.dbt("build")
    module_dbt_env.load(events[half:])
    module_dbt_env.dbt("build")
    with psycopg.connect(settings.dbt_pg_dsn) as conn:
        yield module_dbt_env, conn


def insert_copy(env, conn, model: str, row_filter: str, overrides: dict[str, str]) -> None:
    """As the dbt role, insert a copy of one row of `model` with a fresh key and `overrides`
    (SQL expressions over the copied row; test constants, not data)."""
    schema = env.schema(LAYERS.get(model, "analytics"))
    columns = [
        r["column_name"]
        for r in env.rows(
            "select column_name from information_schema.columns"
            " where table_schema = %s and table_name = %s order by ordinal_position",
            (schema, model),
        )
    ]
    values = {**FRESH_KEY[model], **overrides}
    select = sql.SQL(", ").join(
        sql.SQL(values[c]) if c in values else sql.Identifier(c) for c in columns
    )
    table = sql.Identifier(schema, model)
    query = sql.SQL("insert into {t} select {s} from {t} where {f} limit 1").format(
        t=table, s=select, f=sql.SQL(row_filter)
    )
    try:
        cur = conn.execute(query)
        # A filter that matches no row would prove nothing.
        assert cur.rowcount == 1, "the control row was not written"
    finally:
        conn.rollback()


def test_a_fresh_copy_of_a_row_is_accepted(built):
    """The control: without an override the copied row is written, so each refusal below is
    the override's doing."""
    env, conn = built
    for model in FRESH_KEY:
        insert_copy(env, conn, model, "true", {})


@pytest.mark.parametrize(("model", "column"), NOT_NULL)
def test_not_null_constraint_refuses_a_null(built, model, column):
    env, conn = built
    with pytest.raises(errors.NotNullViolation) as refused:
        insert_copy(env, conn, model, "true", {column: "null"})
    assert refused.value.diag.column_name == column
    assert refused.value.diag.table_name == model


@pytest.mark.parametrize(("model", "name"), CHECKS)
def test_check_constraint_refuses_a_violating_row(built, model, name):
    env, conn = built
    row_filter, overrides = CHECK_VIOLATIONS[name]
    with pytest.raises(errors.CheckViolation) as refused:
        insert_copy(env, conn, model, row_filter, overrides)
    assert refused.value.diag.constraint_name == name
    assert refused.value.diag.table_name == model


def test_build_over_a_violating_event_fails_naming_the_constraint(dbt_env, olist_data, events_of):
    """A negative payment (the contract refuses it; here written straight into raw, as a
    bug upstream would) stops the incremental build at fact_orders with the constraint's
    name, and the table keeps its rows from before."""
    events = events_of(sample_orders(olist_data, first=50))
    dbt_env.load(events)
    dbt_env.dbt("build")
    before = dbt_env.table("fact_orders")
    paid = next(e for e in reversed(events) if e["order"]["payments"])
    bad = copy.deepcopy(paid)
    bad["sequence"] += 1
    bad["event_id"] = f"{bad['order']['order_id']}:{bad['sequence']}"
    bad["order"]["payments"][0]["payment_value"] = -5
    dbt_env.load([bad])
    run = dbt_env.dbt("build", check=False)
    assert run.returncode != 0
    assert run.statuses()["model.olist.fact_orders"] == "error"
    assert "fact_orders_money_non_negative" in run.output
    assert dbt_env.table("fact_orders") == before
