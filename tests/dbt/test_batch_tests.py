"""Per-batch data tests: an incremental build tests the rows its batch rewrote (a bad row of the
batch fails that build), not the untouched history; a full build and the scheduled run with var
full_history_tests test whole tables."""

from __future__ import annotations

import copy

import pytest
from psycopg import sql

from olist_assets.defs.dbt.assets import dbt_build_args
from tests.dbt.expected_marts import sample_orders

pytestmark = pytest.mark.services

# A row-level test kept as a test (severity warn: a gap in an order's sequences is reported,
# not refused); the other row-level invariants are constraints (test_constraints.py).
GAP_TEST = "expression_is_true_int_orders_latest_latest_sequence___event_count"


def flagged_tests(run) -> dict[str, int]:
    """Short test name → failing rows, for every data test that did not pass."""
    return {
        r["unique_id"].split(".")[2]: r["failures"]
        for r in run.results
        if r["unique_id"].startswith("test.") and r["status"] in ("warn", "fail", "error")
    }


def gap_rows(run) -> int | None:
    """Rows the sequence-gap test flagged (None when it passed)."""
    return next((n for name, n in flagged_tests(run).items() if GAP_TEST in name), None)


def test_a_bad_row_is_flagged_in_its_batch_and_history_is_tested_on_schedule(
    dbt_env, olist_data, events_of
):
    events = events_of(sample_orders(olist_data, first=400))
    orders = sorted({e["order"]["order_id"] for e in events})
    history, batch_1, batch_2 = set(orders[:-40]), set(orders[-40:-20]), set(orders[-20:])

    def of(chosen: set[str]) -> list:
        return [copy.deepcopy(e) for e in events if e["order"]["order_id"] in chosen]

    # History bulk-loaded right before the batches.
    dbt_env.load(of(history))
    dbt_env.dbt("build")

    # Break a row of history behind dbt's back: a good batch's build does not read it.
    old_order = sorted(history)[0]
    dbt_env.rows(
        sql.SQL(
            "update {} set event_count = event_count + 1 where order_id = %s returning 1"
        ).format(sql.Identifier(dbt_env.schema("staging"), "int_orders_latest")),
        (old_order,),
    )
    dbt_env.load(of(batch_1))
    good = dbt_env.dbt(*dbt_build_args())
    assert good.rows_affected("fact_orders") == len(batch_1)
    assert gap_rows(good) is None
    assert flagged_tests(good) == {}

    # A batch with one bad row (an order whose first event never arrives): its build flags
    # that row alone, not the old one.
    bad = of(batch_2)
    bad_order = next(
        o for o in sorted(batch_2) if sum(e["order"]["order_id"] == o for e in bad) >= 2
    )
    bad = [e for e in bad if not (e["order"]["order_id"] == bad_order and e["sequence"] == 1)]
    dbt_env.load(bad)
    flagged = dbt_env.dbt(*dbt_build_args())
    assert gap_rows(flagged) == 1
    assert set(flagged_tests(flagged)) == {n for n in flagged_tests(flagged) if GAP_TEST in n}

    # The scheduled run reads everything and reports both rows.
    scheduled = dbt_env.dbt(*dbt_build_args(full_history_tests=True))
    assert gap_rows(scheduled) == 2


def test_batch_tests_read_only_the_rows_the_batch_rewrote(dbt_env, olist_data, events_of):
    events = events_of(sample_orders(olist_data, first=300))
    head, tail = events[:-40], events[-40:]
    dbt_env.load(head)
    dbt_env.dbt("build")
    dbt_env.load(tail)
    run = dbt_env.dbt("build", "--exclude-resource-type", "unit_test")
    compiled = dbt_env.target_path(dbt_env.prefix) / "compiled"
    unique_fact = next(compiled.rglob("unique_fact_orders_order_id*.sql")).read_text()
    assert "fact_orders__change_set" in unique_fact  # scoped to the batch's orders
    # The scope is the batch's rewrite (the change set fact_orders recorded), not history.
    scope = unique_fact.split("from (select * from ", 1)[1].split(") dbt_subquery", 1)[0]
    # The relation and predicate dbt compiled, counted as they are.
    scoped = dbt_env.rows(sql.SQL("select count(*) as n from ") + sql.SQL(scope))[0]["n"]
    batch_orders = {e["order"]["order_id"] for e in tail}
    assert scoped == run.rows_affected("fact_orders") == len(batch_orders)
    assert scoped < len(dbt_env.table("fact_orders"))
    # raw_orders' tests read the batch's offset range: the events of the batch.
    not_null_raw = next(compiled.rglob("source_not_null_raw_raw_orders_order_id*.sql")).read_text()
    raw_scope = not_null_raw.split("from (select * from ", 1)[1].split(") dbt_subquery", 1)[0]
    raw_scoped = dbt_env.rows(sql.SQL("select count(*) as n from ") + sql.SQL(raw_scope))[0]["n"]
    assert raw_scoped == len(tail)
    # A full refresh tests whole tables again.
    dbt_env.dbt("build", "--full-refresh")
    unique_fact = next(compiled.rglob("unique_fact_orders_order_id*.sql")).read_text()
    assert "__change_set" not in unique_fact
