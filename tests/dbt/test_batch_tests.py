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

STATUS_TEST = "accepted_values_fact_orders_order_status"


def failed_tests(run) -> dict[str, int]:
    """Short test name → failing rows, for every data test that did not pass."""
    return {
        r["unique_id"].split(".")[2]: r["failures"]
        for r in run.results
        if r["unique_id"].startswith("test.") and r["status"] in ("fail", "error")
    }


def status_failures(run) -> int | None:
    """Failing rows of the accepted_values test on fact_orders.order_status (one per bad value)."""
    return next((n for name, n in failed_tests(run).items() if STATUS_TEST in name), None)


def test_a_bad_row_fails_its_batch_and_history_is_tested_on_schedule(
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
        sql.SQL("update {} set order_status = 'lost' where order_id = %s returning 1").format(
            sql.Identifier(dbt_env.schema("analytics"), "fact_orders")
        ),
        (old_order,),
    )
    dbt_env.load(of(batch_1))
    good = dbt_env.dbt(*dbt_build_args())
    assert good.rows_affected("fact_orders") == len(batch_1)

    # A batch with one bad row: its build fails on that row alone ('misplaced', not the old
    # row's 'lost': accepted_values returns one row per bad value).
    bad = of(batch_2)
    bad_order = sorted(batch_2)[0]
    last = max((e for e in bad if e["order"]["order_id"] == bad_order), key=lambda e: e["sequence"])
    last["order"]["order_status"] = "misplaced"
    dbt_env.load(bad)
    failed = dbt_env.dbt(*dbt_build_args(), check=False)
    assert failed.returncode != 0
    assert status_failures(failed) == 1
    assert set(failed_tests(failed)) == {
        name for name in failed_tests(failed) if STATUS_TEST in name
    }

    # The scheduled run reads everything and reports both bad values.
    scheduled = dbt_env.dbt(*dbt_build_args(full_history_tests=True), check=False)
    assert scheduled.returncode != 0
    assert status_failures(scheduled) == 2


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
