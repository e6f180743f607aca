"""An incremental `dbt build` after a second batch of events gives exactly the tables a
`--full-refresh` build gives, including orders canceled after their first build, and its
change set (from the consumer's offsets, recorded per model) is the batch's orders alone,
right after a bulk load."""

from __future__ import annotations

import copy
from datetime import date

import pytest
from psycopg import sql

from kafka_io.contract import EventDocument
from tests.dbt.expected_marts import (
    expected_agg_daily_revenue,
    expected_dim_customers,
    expected_fact_orders,
    sample_orders,
)

pytestmark = pytest.mark.services

TABLES = (
    ("staging", "int_orders_latest"),
    ("analytics", "fact_orders"),
    ("analytics", "dim_customers"),
    ("analytics", "agg_daily_revenue"),
)


def split_stream(
    events: list[EventDocument],
) -> tuple[list[EventDocument], list[EventDocument], set[str], str]:
    """First half / second half of the stream (by event time), then hold back some
    cancelations and one out-of-order event so that the second batch changes old orders."""
    half = len(events) // 2
    first, second = events[:half], events[half:]
    last_sequence: dict[str, int] = {}
    for event in events:
        order_id = event["order"]["order_id"]
        last_sequence[order_id] = max(last_sequence.get(order_id, 0), event["sequence"])
    late_cancel = [
        e
        for e in first
        if e["event_type"] == "order_status_changed"
        and e["order"]["order_status"] == "canceled"
        and e["sequence"] > 1
        and e["sequence"] == last_sequence[e["order"]["order_id"]]
    ][:5]
    # An event that arrives after its successors: sequence 2 of an order whose other events
    # (3 or more) are all in batch 1.
    events_in_first: dict[str, int] = {}
    for event in first:
        order_id = event["order"]["order_id"]
        events_in_first[order_id] = events_in_first.get(order_id, 0) + 1
    out_of_order = next(
        e
        for e in first
        if e["sequence"] == 2
        and last_sequence[e["order"]["order_id"]] >= 3
        and events_in_first[e["order"]["order_id"]] == last_sequence[e["order"]["order_id"]]
    )
    held = {id(e) for e in late_cancel} | {id(out_of_order)}
    first = [e for e in first if id(e) not in held]
    second = late_cancel + [out_of_order] + second
    return first, second, {e["order"]["order_id"] for e in late_cancel}, out_of_order["event_id"]


# Bookkeeping, not data: the number of the build that wrote the row differs by design.
BUILD_COLUMNS = {"_build_seq"}


def table_difference(env, table: tuple[str, str], prefix_a: str, prefix_b: str) -> int:
    """Rows of one build's table missing from the other's, both ways (data columns)."""
    layer, name = table
    a = sql.Identifier(env.schema(layer, prefix_a), name)
    b = sql.Identifier(env.schema(layer, prefix_b), name)
    names = env.rows(
        "select column_name from information_schema.columns"
        " where table_schema = %s and table_name = %s order by ordinal_position",
        (env.schema(layer, prefix_a), name),
    )
    columns = sql.SQL(", ").join(
        sql.Identifier(r["column_name"]) for r in names if r["column_name"] not in BUILD_COLUMNS
    )
    query = sql.SQL(
        "select (select count(*) from (select {c} from {a} except all select {c} from {b}) as d)"
        " + (select count(*) from (select {c} from {b} except all select {c} from {a}) as d)"
        " as n"
    ).format(a=a, b=b, c=columns)
    return env.rows(query)[0]["n"]


def change_set(env, model: str) -> set[tuple]:
    """The keys `model`'s last build recorded as rewritten."""
    relation = sql.Identifier(env.schema("staging"), f"{model}__change_set")
    return {tuple(r.values()) for r in env.rows(sql.SQL("select * from {}").format(relation))}


def test_incremental_build_equals_full_refresh(dbt_env, olist_data, events_of):
    orders = sample_orders(olist_data, first=2000)
    first, second, canceled_later, out_of_order_event = split_stream(events_of(orders))
    assert canceled_later

    # Batch 1 is a bulk load committed right before batch 2: no clock decides what batch 2's
    # build reads, its offsets do.
    dbt_env.load(first)
    dbt_env.dbt("build")
    before = {r["order_id"]: r for r in dbt_env.table("fact_orders")}
    assert all(before[o]["order_status"] != "canceled" for o in canceled_later)
    revenue_before = {
        (r["order_date"], r["customer_state"]): r for r in dbt_env.table("agg_daily_revenue")
    }

    dbt_env.load(second)
    incremental = dbt_env.dbt("build")
    full_prefix = dbt_env.prefix + "full_"
    dbt_env.dbt("build", "--full-refresh", prefix=full_prefix)

    # The incremental run recomputed exactly the orders batch 2 touched, and recorded them
    # (and their customers and cells) as each model's change set.
    touched = {e["order"]["order_id"] for e in second}
    assert incremental.rows_affected("int_orders_latest") == len(touched) < len(orders)
    assert incremental.rows_affected("fact_orders") == len(touched)
    assert change_set(dbt_env, "int_orders_latest") == change_set(dbt_env, "fact_orders")
    assert change_set(dbt_env, "fact_orders") == {(o,) for o in touched}
    expected_touched = expected_fact_orders(
        [o for o in orders if o["order_id"] in touched], olist_data
    )
    assert change_set(dbt_env, "dim_customers") == {
        (r["customer_unique_id"],) for r in expected_touched.values()
    }
    assert change_set(dbt_env, "agg_daily_revenue") == {
        (r["order_date"], r["customer_state"]) for r in expected_touched.values()
    }

    for table in TABLES:
        assert table_difference(dbt_env, table, dbt_env.prefix, full_prefix) == 0, table

    after = {r["order_id"]: r for r in dbt_env.table("fact_orders")}
    revenue_after = {
        (r["order_date"], r["customer_state"]): r for r in dbt_env.table("agg_daily_revenue")
    }
    expected = expected_fact_orders(orders, olist_data)
    assert after == expected
    assert revenue_after == expected_agg_daily_revenue(expected)
    customers = {r["customer_unique_id"]: r for r in dbt_env.table("dim_customers")}
    assert customers == expected_dim_customers(expected, olist_data)
    # After batch 1 the late-canceled orders were revenue orders, and the aggregate agreed
    # with the facts; after batch 2 they are canceled and out of their day's revenue
    # (some have no items, so their revenue was 0: compare the revenue order count).
    assert revenue_before == expected_agg_daily_revenue(before)
    for order_id in canceled_later:
        assert before[order_id]["order_status"] not in ("canceled", "unavailable")
        assert after[order_id]["order_status"] == "canceled"
        cell = (after[order_id]["order_date"], after[order_id]["customer_state"])
        assert (
            revenue_after[cell]["revenue_order_count"] < revenue_before[cell]["revenue_order_count"]
        )
    late_order = out_of_order_event.split(":")[0]
    assert before[late_order] == after[late_order] == expected[late_order]


def moved_event(event: EventDocument, **order_changes) -> EventDocument:
    """A later event of `event`'s order (the next sequence) whose snapshot changes
    `order_changes` (top-level order fields; `customer` is merged into the customer)."""
    moved = copy.deepcopy(event)
    sequence = event["sequence"] + 1
    moved["sequence"] = sequence
    moved["event_id"] = f"{event['order']['order_id']}:{sequence}"
    moved["event_type"] = "order_status_changed"
    customer = order_changes.pop("customer", {})
    moved["order"].update(order_changes)
    moved["order"]["customer"].update(customer)
    return moved


def test_order_moved_to_another_cell_and_customer_leaves_the_old_ones(
    dbt_env, olist_data, events_of
):
    """A later event that corrects an order's purchase time, state and customer takes the
    order out of its old (day, state) cell and its old customer: both are recomputed (or
    removed, when the order was their only one), so incremental == full refresh."""
    orders = sample_orders(olist_data, first=300)
    events = events_of(orders)
    last_events = {}
    for event in events:
        last_events[event["order"]["order_id"]] = event
    facts = expected_fact_orders(orders, olist_data)
    cells: dict[tuple, list[str]] = {}
    customers: dict[str, list[str]] = {}
    for fact in facts.values():
        cells.setdefault((fact["order_date"], fact["customer_state"]), []).append(fact["order_id"])
        customers.setdefault(fact["customer_unique_id"], []).append(fact["order_id"])
    # `alone`: the only order of its cell and of its customer (both must disappear);
    # `shared`: an order whose old cell keeps other orders (it must be recomputed without it).
    alone = next(
        o
        for o, f in facts.items()
        if len(cells[(f["order_date"], f["customer_state"])]) == 1
        and len(customers[f["customer_unique_id"]]) == 1
        and f["order_status"] not in ("canceled", "unavailable")
        and f["total_price"] > 0
    )
    shared = next(
        o
        for o, f in facts.items()
        if len(cells[(f["order_date"], f["customer_state"])]) > 1
        and f["order_status"] not in ("canceled", "unavailable")
        and f["total_price"] > 0
    )
    other_customer = next(
        c for c, ids in customers.items() if alone not in ids and shared not in ids
    )
    batch = [
        moved_event(
            last_events[alone],
            purchased_at="2016-01-02T03:04:05",
            customer={"state": "AC", "customer_unique_id": "f" * 32},
        ),
        moved_event(
            last_events[shared],
            purchased_at="2016-01-03T03:04:05",
            customer={"state": "AP", "customer_unique_id": other_customer},
        ),
    ]
    old = {o: facts[o] for o in (alone, shared)}

    dbt_env.load(events)
    dbt_env.dbt("build")
    dbt_env.load(batch)
    dbt_env.dbt("build")
    full_prefix = dbt_env.prefix + "full_"
    dbt_env.dbt("build", "--full-refresh", prefix=full_prefix)

    # The marts' change sets hold the orders' cells and customers before and after the move.
    assert change_set(dbt_env, "agg_daily_revenue") == {
        (f["order_date"], f["customer_state"]) for f in old.values()
    } | {(date(2016, 1, 2), "AC"), (date(2016, 1, 3), "AP")}
    assert change_set(dbt_env, "dim_customers") == {
        (f["customer_unique_id"],) for f in old.values()
    } | {("f" * 32,), (other_customer,)}
    for table in TABLES:
        assert table_difference(dbt_env, table, dbt_env.prefix, full_prefix) == 0, table

    revenue = {
        (r["order_date"], r["customer_state"]): r for r in dbt_env.table("agg_daily_revenue")
    }
    alone_cell = (old[alone]["order_date"], old[alone]["customer_state"])
    shared_cell = (old[shared]["order_date"], old[shared]["customer_state"])
    assert alone_cell not in revenue
    assert revenue[shared_cell]["order_count"] == len(cells[shared_cell]) - 1
    assert revenue[(date(2016, 1, 2), "AC")]["total_revenue"] == old[alone]["total_price"]
    dim = {r["customer_unique_id"]: r for r in dbt_env.table("dim_customers")}
    assert old[alone]["customer_unique_id"] not in dim
    assert dim["f" * 32]["lifetime_value"] == old[alone]["order_value"]
    assert dim[other_customer]["total_orders"] == len(customers[other_customer]) + 1
