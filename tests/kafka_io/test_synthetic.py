"""The synthetic generator: deterministic per seed, streamed, valid on the wire, and shaped like
the real data (FACTS.md shares within tolerances)."""

from __future__ import annotations

import collections
import itertools
import random
import re
import statistics
from decimal import Decimal

import pytest

from kafka_io.contract import as_document, encode_event, event_key, parse_event
from kafka_io.olist_csv import OlistOrder, events_in_time_order, iter_order_events
from kafka_io.synthetic import synthetic_events, synthetic_orders

HEX32 = re.compile(r"[0-9a-f]{32}")


def wire_bytes(n: int, seed: int) -> list[bytes]:
    return [encode_event(event) for event in synthetic_events(n, seed)]


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    assert wire_bytes(300, seed=7) == wire_bytes(300, seed=7)
    assert wire_bytes(300, seed=7) != wire_bytes(300, seed=8)


def test_first_orders_do_not_depend_on_how_many_are_asked_for() -> None:
    assert list(synthetic_orders(50, seed=3)) == list(synthetic_orders(200, seed=3))[:50]


def test_generator_leaves_the_global_random_state_alone() -> None:
    random.seed(1234)
    before = random.getstate()
    list(synthetic_events(100, seed=5))
    assert random.getstate() == before


def test_orders_stream_in_purchase_order_without_being_built_up_front() -> None:
    # A trillion orders cannot be held in memory: the first ones must come at once.
    first = list(itertools.islice(synthetic_orders(10**12, seed=1), 2_000))
    purchases = [order.purchased_at for order in first]
    assert purchases == sorted(purchases)
    assert all(moment.microsecond == 0 for moment in purchases)


def test_synthetic_events_are_the_shared_merge_of_synthetic_orders() -> None:
    assert list(synthetic_events(200, seed=9)) == list(
        events_in_time_order(synthetic_orders(200, seed=9))
    )


def test_every_generated_event_is_valid_on_the_wire_and_in_time_order() -> None:
    previous = ""
    count = 0
    for event in synthetic_events(3_000, seed=11):
        assert as_document(parse_event(event_key(event), encode_event(event))) == event
        assert event["event_time"] >= previous
        previous = event["event_time"]
        count += 1
    assert 3.8 * 3_000 < count < 4.1 * 3_000  # about four events per order, as in the real data


@pytest.fixture(scope="module")
def orders() -> list[OlistOrder]:
    return list(synthetic_orders(20_000, seed=2024))


def share(count: int, total: int) -> float:
    return 100 * count / total


def test_ids_are_32_hex_and_order_ids_unique(orders: list[OlistOrder]) -> None:
    assert len({o.order_id for o in orders}) == len(orders)
    assert len({o.customer.customer_id for o in orders}) == len(orders)
    ids = [o.order_id for o in orders[:500]] + [i.product_id for o in orders[:500] for i in o.items]
    assert all(HEX32.fullmatch(i) for i in ids)


def test_status_shares_follow_the_real_data(orders: list[OlistOrder]) -> None:
    statuses = collections.Counter(o.order_status for o in orders)
    assert share(statuses["delivered"], len(orders)) == pytest.approx(97.02, abs=0.6)
    assert share(statuses["shipped"], len(orders)) == pytest.approx(1.11, abs=0.3)
    assert share(statuses["canceled"] + statuses["unavailable"], len(orders)) == pytest.approx(
        1.24, abs=0.35
    )


def test_states_cities_and_zip_codes(orders: list[OlistOrder]) -> None:
    states = collections.Counter(o.customer.state for o in orders)
    assert share(states["SP"], len(orders)) == pytest.approx(41.98, abs=1.5)
    assert share(states["RJ"], len(orders)) == pytest.approx(12.92, abs=1.0)
    assert len(states) == 27
    cities = collections.Counter(o.customer.city for o in orders)
    assert share(cities["sao paulo"], len(orders)) == pytest.approx(15.63, abs=1.0)
    assert all(o.customer.state == "SP" for o in orders if o.customer.city == "sao paulo")
    zips = [o.customer.zip_code_prefix for o in orders]
    assert all(re.fullmatch(r"[0-9]{5}", z) for z in zips)
    assert any(z.startswith("0") for z in zips)  # leading zeros are kept


def test_repeat_customers_are_about_three_percent(orders: list[OlistOrder]) -> None:
    per_person = collections.Counter(o.customer.customer_unique_id for o in orders)
    assert share(sum(n > 1 for n in per_person.values()), len(per_person)) == pytest.approx(
        3.12, abs=1.0
    )


def test_items_per_order_and_orders_without_items(orders: list[OlistOrder]) -> None:
    without = [o for o in orders if not o.items]
    assert share(len(without), len(orders)) == pytest.approx(0.78, abs=0.3)
    assert {o.order_status for o in without} <= {
        "unavailable",
        "canceled",
        "created",
        "invoiced",
        "shipped",
    }
    with_items = [len(o.items) for o in orders if o.items]
    assert statistics.mean(with_items) == pytest.approx(1.142, abs=0.05)
    assert all(
        [i.order_item_id for i in o.items] == list(range(1, len(o.items) + 1)) for o in orders
    )


def test_price_and_freight_follow_the_measured_quantiles(orders: list[OlistOrder]) -> None:
    prices = sorted(float(i.price) for o in orders for i in o.items)
    freights = sorted(float(i.freight_value) for o in orders for i in o.items)
    cut = statistics.quantiles
    p5, p50, p95 = (cut(prices, n=20)[k] for k in (0, 9, 18))
    assert p5 == pytest.approx(17.00, rel=0.15)
    assert p50 == pytest.approx(74.99, rel=0.1)
    assert p95 == pytest.approx(349.90, rel=0.15)
    assert cut(freights, n=20)[9] == pytest.approx(16.26, rel=0.1)
    money = [
        *(m for o in orders for i in o.items for m in (i.price, i.freight_value)),
        *(p.payment_value for o in orders for p in o.payments),
    ]
    assert all(m >= 0 and m == m.quantize(Decimal("0.01")) for m in money)


def test_payments_add_up_and_types_follow_the_real_shares(orders: list[OlistOrder]) -> None:
    rows = [p for o in orders for p in o.payments]
    types = collections.Counter(p.payment_type for p in rows)
    assert share(types["credit_card"], len(rows)) == pytest.approx(73.92, abs=2.0)
    assert share(types["boleto"], len(rows)) == pytest.approx(19.04, abs=1.5)
    assert share(types["voucher"], len(rows)) == pytest.approx(5.56, abs=1.0)
    assert all(p.payment_installments == 1 for p in rows if p.payment_type != "credit_card")
    with_both = [o for o in orders if o.items and o.payments]
    matching = sum(
        sum(p.payment_value for p in o.payments) == sum(i.price + i.freight_value for i in o.items)
        for o in with_both
    )
    assert share(matching, len(with_both)) == pytest.approx(99.61, abs=0.3)


def test_lifecycle_gaps_and_quirks(orders: list[OlistOrder]) -> None:
    approval_hours = [
        (o.approved_at - o.purchased_at).total_seconds() / 3600 for o in orders if o.approved_at
    ]
    assert statistics.median(approval_hours) == pytest.approx(0.34, rel=0.15)
    both = [o for o in orders if o.approved_at and o.delivered_carrier_at]
    carrier_first = sum(o.delivered_carrier_at < o.approved_at for o in both)
    assert share(carrier_first, len(both)) == pytest.approx(1.39, abs=0.5)
    delivered = [o for o in orders if o.delivered_customer_at]
    assert all(o.delivered_customer_at >= o.purchased_at for o in delivered)
    transit_days = [
        (o.delivered_customer_at - o.delivered_carrier_at).total_seconds() / 86_400
        for o in delivered
        if o.delivered_carrier_at
    ]
    assert statistics.median(transit_days) == pytest.approx(7.10, rel=0.1)
    assert all(o.estimated_delivery_date > o.purchased_at.date() for o in orders)


def test_timestamps_missing_per_status_as_in_olist(orders: list[OlistOrder]) -> None:
    for order in orders:
        if order.order_status in ("created",):
            assert order.approved_at is None and order.delivered_carrier_at is None
        if order.order_status in ("invoiced", "processing", "unavailable", "approved"):
            assert order.approved_at is not None
            assert order.delivered_carrier_at is None and order.delivered_customer_at is None
        if order.order_status == "shipped":
            assert order.delivered_carrier_at is not None and order.delivered_customer_at is None


def test_last_event_reproduces_the_generated_order(orders: list[OlistOrder]) -> None:
    for order in orders[:500]:
        last = list(iter_order_events(order))[-1]["order"]
        assert last["order_status"] == order.order_status
        assert (last["approved_at"] is None) == (order.approved_at is None)
        assert (last["delivered_customer_at"] is None) == (order.delivered_customer_at is None)
