"""The event rule on hand-made orders (with the real data's quirks), the event-time merge, the
CSV reader on small hand-written files, and the reader on the real Olist copy."""

from __future__ import annotations

import collections
import csv
import gzip
import itertools
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kafka_io.contract import as_document, encode_event, event_key, parse_event
from kafka_io.olist_csv import (
    OlistCustomer,
    OlistItem,
    OlistOrder,
    OlistPayment,
    events_in_time_order,
    iter_order_events,
    read_orders,
    replay_events,
)

OLIST_DATA_DIR = Path(
    os.environ.get("OLIST_DATA_DIR", Path(__file__).parents[2].parent / "shared/data/olist")
)
needs_real_data = pytest.mark.skipif(
    not (OLIST_DATA_DIR / "olist_orders_dataset.csv.gz").exists(),
    reason=f"real Olist data not found at {OLIST_DATA_DIR} (set OLIST_DATA_DIR)",
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def hex_id(n: int) -> str:
    return f"{n:032x}"


CUSTOMER = OlistCustomer(hex_id(0xC1), hex_id(0xC2), "01151", "sao paulo", "SP")
ITEM = OlistItem(
    order_item_id=1,
    product_id=hex_id(0xA1),
    seller_id=hex_id(0x51),
    product_category="utilidades_domesticas",
    shipping_limit_at=at("2017-10-06 11:07:15"),
    price=Decimal("29.99"),
    freight_value=Decimal("8.72"),
)
PAYMENT = OlistPayment(1, "credit_card", 1, Decimal("38.71"))


def make_order(**changes: Any) -> OlistOrder:
    """A delivered order with every lifecycle date; `changes` override fields."""
    order = OlistOrder(
        order_id=hex_id(0xE481),
        order_status="delivered",
        purchased_at=at("2017-10-02 10:56:33"),
        approved_at=at("2017-10-02 11:07:15"),
        delivered_carrier_at=at("2017-10-04 19:55:00"),
        delivered_customer_at=at("2017-10-10 21:25:13"),
        estimated_delivery_date=date(2017, 10, 18),
        customer=CUSTOMER,
        items=(ITEM,),
        payments=(PAYMENT,),
    )
    return replace(order, **changes)


def shape(events: list[dict[str, Any]]) -> list[tuple[int, str, str, str]]:
    """(sequence, event_type, event_time, order_status) of each event."""
    return [
        (e["sequence"], e["event_type"], e["event_time"], e["order"]["order_status"])
        for e in events
    ]


def timestamps(event: dict[str, Any]) -> tuple[Any, ...]:
    order = event["order"]
    return (
        order["approved_at"],
        order["delivered_carrier_at"],
        order["delivered_customer_at"],
    )


def olist_row(order: OlistOrder) -> dict[str, Any]:
    """The Olist orders row of `order`, in the event's wire format."""

    def text(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat(sep="T")

    return {
        "order_id": order.order_id,
        "order_status": order.order_status,
        "purchased_at": text(order.purchased_at),
        "approved_at": text(order.approved_at),
        "delivered_carrier_at": text(order.delivered_carrier_at),
        "delivered_customer_at": text(order.delivered_customer_at),
        "estimated_delivery_date": order.estimated_delivery_date.isoformat(),
        "customer_id": order.customer.customer_id,
        "item_count": len(order.items),
        "total_price": sum((item.price for item in order.items), Decimal(0)),
        "total_payment": sum((p.payment_value for p in order.payments), Decimal(0)),
    }


def row_of_event(event: dict[str, Any]) -> dict[str, Any]:
    order = event["order"]
    fields = (
        "order_id",
        "order_status",
        "purchased_at",
        "approved_at",
        "delivered_carrier_at",
        "delivered_customer_at",
        "estimated_delivery_date",
    )
    return {field: order[field] for field in fields} | {
        "customer_id": order["customer"]["customer_id"],
        "item_count": len(order["items"]),
        "total_price": sum((item["price"] for item in order["items"]), Decimal(0)),
        "total_payment": sum((p["payment_value"] for p in order["payments"]), Decimal(0)),
    }


def assert_valid_on_the_wire(events: list[dict[str, Any]]) -> None:
    for event in events:
        assert as_document(parse_event(event_key(event), encode_event(event))) == event


# --- The event rule -------------------------------------------------------------------------


def test_delivered_order_walks_the_four_stages_revealing_one_date_at_a_time() -> None:
    order = make_order()
    events = list(iter_order_events(order))
    assert shape(events) == [
        (1, "order_created", "2017-10-02T10:56:33", "created"),
        (2, "order_approved", "2017-10-02T11:07:15", "approved"),
        (3, "order_shipped", "2017-10-04T19:55:00", "shipped"),
        (4, "order_delivered", "2017-10-10T21:25:13", "delivered"),
    ]
    assert [timestamps(e) for e in events] == [
        (None, None, None),
        ("2017-10-02T11:07:15", None, None),
        ("2017-10-02T11:07:15", "2017-10-04T19:55:00", None),
        ("2017-10-02T11:07:15", "2017-10-04T19:55:00", "2017-10-10T21:25:13"),
    ]
    assert [e["event_id"] for e in events] == [f"{order.order_id}:{n}" for n in range(1, 5)]
    assert_valid_on_the_wire(events)


def test_every_event_carries_items_payments_customer_and_estimate_from_the_first() -> None:
    events = list(iter_order_events(make_order()))
    for event in events:
        order = event["order"]
        assert order["purchased_at"] == "2017-10-02T10:56:33"
        assert order["estimated_delivery_date"] == "2017-10-18"
        assert order["customer"] == {
            "customer_id": CUSTOMER.customer_id,
            "customer_unique_id": CUSTOMER.customer_unique_id,
            "zip_code_prefix": "01151",
            "city": "sao paulo",
            "state": "SP",
        }
        assert order["items"] == [
            {
                "order_item_id": 1,
                "product_id": ITEM.product_id,
                "seller_id": ITEM.seller_id,
                "product_category": "utilidades_domesticas",
                "shipping_limit_at": "2017-10-06T11:07:15",
                "price": Decimal("29.99"),
                "freight_value": Decimal("8.72"),
            }
        ]
        assert order["payments"] == [
            {
                "payment_sequential": 1,
                "payment_type": "credit_card",
                "payment_installments": 1,
                "payment_value": Decimal("38.71"),
            }
        ]
    # Each event owns its containers: editing one event must not edit another.
    events[0]["order"]["items"][0]["price"] = Decimal(0)
    assert events[1]["order"]["items"][0]["price"] == Decimal("29.99")


def test_carrier_before_approval_ships_before_it_is_approved() -> None:
    order = make_order(delivered_carrier_at=at("2017-10-02 11:00:00"))
    events = list(iter_order_events(order))
    assert shape(events) == [
        (1, "order_created", "2017-10-02T10:56:33", "created"),
        (2, "order_shipped", "2017-10-02T11:00:00", "shipped"),
        (3, "order_approved", "2017-10-02T11:07:15", "approved"),
        (4, "order_delivered", "2017-10-10T21:25:13", "delivered"),
    ]
    # A date is null iff it is strictly later than the event: the carrier date is known
    # at the shipped event, the approval (later) is not.
    assert timestamps(events[1]) == (None, "2017-10-02T11:00:00", None)
    assert timestamps(events[2]) == ("2017-10-02T11:07:15", "2017-10-02T11:00:00", None)
    assert_valid_on_the_wire(events)


def test_carrier_before_purchase_is_never_before_the_order_exists() -> None:
    # 166 real orders were handed to the carrier minutes before their purchase time.
    order = make_order(delivered_carrier_at=at("2017-10-02 10:40:00"))
    events = list(iter_order_events(order))
    assert shape(events) == [
        (1, "order_created", "2017-10-02T10:56:33", "created"),
        (2, "order_shipped", "2017-10-02T10:56:33", "shipped"),
        (3, "order_approved", "2017-10-02T11:07:15", "approved"),
        (4, "order_delivered", "2017-10-10T21:25:13", "delivered"),
    ]
    # The real carrier date is kept in the snapshot, known from the first event on.
    assert [e["order"]["delivered_carrier_at"] for e in events] == ["2017-10-02T10:40:00"] * 4
    assert_valid_on_the_wire(events)


def test_canceled_after_approval_ends_with_a_status_change_at_the_approval_time() -> None:
    order = make_order(
        order_status="canceled", delivered_carrier_at=None, delivered_customer_at=None
    )
    events = list(iter_order_events(order))
    assert shape(events) == [
        (1, "order_created", "2017-10-02T10:56:33", "created"),
        (2, "order_approved", "2017-10-02T11:07:15", "approved"),
        (3, "order_status_changed", "2017-10-02T11:07:15", "canceled"),
    ]
    assert timestamps(events[-1]) == ("2017-10-02T11:07:15", None, None)


def test_canceled_order_that_was_delivered_gets_five_events() -> None:
    events = list(iter_order_events(make_order(order_status="canceled")))
    assert [e["event_type"] for e in events][-2:] == ["order_delivered", "order_status_changed"]
    assert events[-1]["event_time"] == events[-2]["event_time"]
    assert events[-2]["order"]["order_status"] == "delivered"
    assert events[-1]["order"]["order_status"] == "canceled"


def test_delivered_status_without_a_delivery_date_is_set_by_a_status_change() -> None:
    order = make_order(delivered_customer_at=None)
    events = list(iter_order_events(order))
    assert shape(events)[-2:] == [
        (3, "order_shipped", "2017-10-04T19:55:00", "shipped"),
        (4, "order_status_changed", "2017-10-04T19:55:00", "delivered"),
    ]
    assert events[-1]["order"]["delivered_customer_at"] is None


def test_order_still_in_its_last_stage_needs_no_status_change() -> None:
    created = make_order(
        order_status="created",
        approved_at=None,
        delivered_carrier_at=None,
        delivered_customer_at=None,
    )
    assert shape(list(iter_order_events(created))) == [
        (1, "order_created", "2017-10-02T10:56:33", "created")
    ]
    shipped = make_order(order_status="shipped", delivered_customer_at=None)
    assert [e["event_type"] for e in iter_order_events(shipped)][-1] == "order_shipped"


def test_invoiced_order_shows_its_final_status_on_the_last_event_only() -> None:
    order = make_order(
        order_status="invoiced", delivered_carrier_at=None, delivered_customer_at=None
    )
    assert [e["order"]["order_status"] for e in iter_order_events(order)] == [
        "created",
        "approved",
        "invoiced",
    ]


def test_equal_timestamps_keep_stage_order() -> None:
    # Approved in the same second as purchased: created comes first, and the approval, not
    # strictly later than the created event, is already visible on it.
    order = make_order(approved_at=at("2017-10-02 10:56:33"))
    events = list(iter_order_events(order))
    assert shape(events)[:2] == [
        (1, "order_created", "2017-10-02T10:56:33", "created"),
        (2, "order_approved", "2017-10-02T10:56:33", "approved"),
    ]
    assert events[0]["order"]["approved_at"] == "2017-10-02T10:56:33"


def test_order_without_items_or_payments_still_emits_valid_events() -> None:
    order = make_order(
        order_status="unavailable",
        delivered_carrier_at=None,
        delivered_customer_at=None,
        items=(),
        payments=(),
    )
    events = list(iter_order_events(order))
    assert [e["event_type"] for e in events] == [
        "order_created",
        "order_approved",
        "order_status_changed",
    ]
    assert all(e["order"]["items"] == [] and e["order"]["payments"] == [] for e in events)
    assert_valid_on_the_wire(events)


def test_items_and_payments_come_sorted() -> None:
    second_item = replace(ITEM, order_item_id=2, price=Decimal("10.00"))
    voucher = OlistPayment(2, "voucher", 1, Decimal("5.00"))
    order = make_order(items=(second_item, ITEM), payments=(voucher, PAYMENT))
    event = next(iter_order_events(order))
    assert [i["order_item_id"] for i in event["order"]["items"]] == [1, 2]
    assert [p["payment_sequential"] for p in event["order"]["payments"]] == [1, 2]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"order_status": "canceled", "delivered_carrier_at": None, "delivered_customer_at": None},
        {"delivered_customer_at": None},
        {"approved_at": None},
        {"delivered_carrier_at": at("2017-10-02 11:00:00")},
        {"delivered_carrier_at": at("2017-10-01 09:00:00")},
        {"items": (), "payments": ()},
    ],
)
def test_last_event_reproduces_the_olist_row(changes: dict[str, Any]) -> None:
    order = make_order(**changes)
    last = list(iter_order_events(order))[-1]
    assert row_of_event(last) == olist_row(order)


# --- The event-time merge -------------------------------------------------------------------


def test_merge_interleaves_orders_by_event_time_then_purchase_order_then_sequence() -> None:
    first = make_order(order_id=hex_id(1))
    # Purchased when the first order is approved: on that tie the earlier order goes first.
    second = make_order(
        order_id=hex_id(2),
        purchased_at=at("2017-10-02 11:07:15"),
        approved_at=at("2017-10-02 11:07:15"),
        delivered_carrier_at=at("2017-10-03 08:00:00"),
        delivered_customer_at=at("2017-10-05 12:00:00"),
    )
    merged = [(e["event_id"], e["event_time"]) for e in events_in_time_order([first, second])]
    assert merged == [
        (f"{hex_id(1)}:1", "2017-10-02T10:56:33"),
        (f"{hex_id(1)}:2", "2017-10-02T11:07:15"),
        (f"{hex_id(2)}:1", "2017-10-02T11:07:15"),
        (f"{hex_id(2)}:2", "2017-10-02T11:07:15"),
        (f"{hex_id(2)}:3", "2017-10-03T08:00:00"),
        (f"{hex_id(1)}:3", "2017-10-04T19:55:00"),
        (f"{hex_id(2)}:4", "2017-10-05T12:00:00"),
        (f"{hex_id(1)}:4", "2017-10-10T21:25:13"),
    ]


def test_merge_refuses_orders_out_of_purchase_order() -> None:
    late = make_order(order_id=hex_id(1))
    early = make_order(order_id=hex_id(2), purchased_at=at("2017-10-01 00:00:00"))
    with pytest.raises(ValueError, match="purchase-time order"):
        list(events_in_time_order([late, early]))


def endless_orders(consumed: list[int]) -> Iterator[OlistOrder]:
    """One order every hour forever, each delivered ten days later; counts what was read."""
    for n in itertools.count():
        purchased = datetime(2017, 1, 1) + timedelta(hours=n)
        consumed.append(n)
        yield make_order(
            order_id=hex_id(n + 1),
            purchased_at=purchased,
            approved_at=purchased + timedelta(minutes=30),
            delivered_carrier_at=purchased + timedelta(minutes=45),
            delivered_customer_at=purchased + timedelta(days=10),
        )


def test_merge_streams_and_holds_only_orders_in_flight() -> None:
    consumed: list[int] = []
    first_delivery = next(
        e
        for e in events_in_time_order(endless_orders(consumed))
        if e["event_type"] == "order_delivered"
    )
    assert first_delivery["event_id"] == f"{hex_id(1)}:4"
    # Ten days of hourly orders are in flight when the first one is delivered; not more.
    assert 240 <= len(consumed) <= 242


def test_merge_of_one_order_equals_its_own_events() -> None:
    order = make_order(delivered_carrier_at=at("2017-10-02 10:00:00"))
    assert list(events_in_time_order([order])) == list(iter_order_events(order))


# --- The CSV reader on hand-written files ---------------------------------------------------

SMALL_TABLES: dict[str, list[list[str]]] = {
    "olist_orders_dataset": [
        [
            "order_id",
            "customer_id",
            "order_status",
            "order_purchase_timestamp",
            "order_approved_at",
            "order_delivered_carrier_date",
            "order_delivered_customer_date",
            "order_estimated_delivery_date",
        ],
        # Out of purchase order, as in Kaggle's original file.
        [hex_id(2), hex_id(0xB2), "canceled", "2018-01-02 09:00:00", "", "", "",
         "2018-01-20 00:00:00"],
        [hex_id(1), hex_id(0xB1), "delivered", "2018-01-01 10:00:00", "2018-01-01 10:15:00",
         "2018-01-03 12:00:00", "2018-01-08 18:30:00", "2018-01-25 00:00:00"],
    ],
    "olist_customers_dataset": [
        ["customer_id", "customer_unique_id", "customer_zip_code_prefix", "customer_city",
         "customer_state"],
        [hex_id(0xB1), hex_id(0xD1), "01151", "sao paulo", "SP"],
        [hex_id(0xB2), hex_id(0xD2), "22790", "rio de janeiro", "RJ"],
    ],
    "olist_order_items_dataset": [
        ["order_id", "order_item_id", "product_id", "seller_id", "shipping_limit_date", "price",
         "freight_value"],
        [hex_id(1), "2", hex_id(0xF2), hex_id(0x5E), "2018-01-05 10:15:00", "0.10", "0.20"],
        [hex_id(1), "1", hex_id(0xF1), hex_id(0x5E), "2018-01-05 10:15:00", "1234.56", "7.00"],
    ],
    "olist_order_payments_dataset": [
        ["order_id", "payment_sequential", "payment_type", "payment_installments",
         "payment_value"],
        [hex_id(1), "1", "credit_card", "3", "1241.86"],
        [hex_id(2), "1", "boleto", "1", "50.00"],
    ],
    "olist_products_dataset": [
        ["product_id", "product_category_name", "product_name_lenght"],
        [hex_id(0xF1), "perfumaria", "40"],
        [hex_id(0xF2), "", ""],
    ],
}  # fmt: skip


def write_tables(directory: Path, compressed: bool) -> Path:
    directory.mkdir()
    for table, rows in SMALL_TABLES.items():
        if compressed:
            with gzip.open(directory / f"{table}.csv.gz", "wt", newline="") as file:
                csv.writer(file, quoting=csv.QUOTE_MINIMAL).writerows(rows)
        else:
            with (directory / f"{table}.csv").open("w", newline="") as file:
                csv.writer(file).writerows(rows)
    return directory


@pytest.mark.parametrize("compressed", [True, False], ids=["csv.gz", "csv"])
def test_reader_joins_side_tables_and_sorts_by_purchase(tmp_path: Path, compressed: bool) -> None:
    data_dir = write_tables(tmp_path / "olist", compressed)
    orders = list(read_orders(data_dir))
    assert [o.order_id for o in orders] == [hex_id(1), hex_id(2)]
    delivered, canceled = orders
    assert delivered.customer == OlistCustomer(
        hex_id(0xB1), hex_id(0xD1), "01151", "sao paulo", "SP"
    )
    assert [(i.order_item_id, i.product_category, i.price) for i in delivered.items] == [
        (1, "perfumaria", Decimal("1234.56")),
        (2, None, Decimal("0.10")),
    ]
    assert delivered.payments == (OlistPayment(1, "credit_card", 3, Decimal("1241.86")),)
    assert delivered.estimated_delivery_date == date(2018, 1, 25)
    assert canceled.items == () and canceled.approved_at is None

    events = list(replay_events(data_dir))
    assert [(e["event_id"][-3:], e["event_type"]) for e in events] == [
        ("1:1", "order_created"),
        ("1:2", "order_approved"),
        ("2:1", "order_created"),
        ("2:2", "order_status_changed"),
        ("1:3", "order_shipped"),
        ("1:4", "order_delivered"),
    ]
    assert_valid_on_the_wire(events)
    # Money straight from the CSV text: 0.10 + 0.20 is exactly 0.30.
    item = events[-1]["order"]["items"][1]
    assert item["price"] + item["freight_value"] == Decimal("0.30")


def test_reader_names_a_missing_table_or_column(tmp_path: Path) -> None:
    data_dir = write_tables(tmp_path / "olist", compressed=False)
    (data_dir / "olist_order_payments_dataset.csv").unlink()
    with pytest.raises(FileNotFoundError, match="olist_order_payments_dataset"):
        list(read_orders(data_dir))
    with (data_dir / "olist_order_payments_dataset.csv").open("w") as file:
        file.write("order_id,payment_sequential\n")
    with pytest.raises(ValueError, match="payment_type"):
        list(read_orders(data_dir))


# --- The real Olist copy --------------------------------------------------------------------

REAL_ORDERS = {
    # first order of the file: shipped, never delivered
    "2e7a8482f6fb09756ca50c10d7bfc047": [
        ("order_created", "2016-09-04T21:15:19", "created"),
        ("order_approved", "2016-10-07T13:18:03", "approved"),
        ("order_shipped", "2016-10-18T13:14:51", "shipped"),
    ],
    # canceled after approval
    "e5fa5a7210941f7d56d0208e4e071d35": [
        ("order_created", "2016-09-05T00:15:34", "created"),
        ("order_approved", "2016-10-07T13:17:15", "approved"),
        ("order_status_changed", "2016-10-07T13:17:15", "canceled"),
    ],
    # handed to the carrier 26 minutes before it was bought
    "fd58bdbb6cc5d7519e063c3ceb7e951b": [
        ("order_created", "2018-04-25T13:02:26", "created"),
        ("order_shipped", "2018-04-25T13:02:26", "shipped"),
        ("order_approved", "2018-04-25T13:15:26", "approved"),
        ("order_delivered", "2018-05-08T16:32:17", "delivered"),
    ],
    # the one order without a payment
    "bfbd0f9bdef84302105ad712db648a6c": None,
}


@pytest.fixture(scope="module")
def real_orders() -> tuple[int, dict[str, OlistOrder]]:
    """How many orders the real copy holds, and the few orders the tests look at."""
    count, picked = 0, {}
    for order in read_orders(OLIST_DATA_DIR):
        count += 1
        if order.order_id in REAL_ORDERS:
            picked[order.order_id] = order
    return count, picked


@needs_real_data
def test_real_copy_has_every_order(real_orders: tuple[int, dict[str, OlistOrder]]) -> None:
    count, picked = real_orders
    assert count == 99_441
    assert set(picked) == set(REAL_ORDERS)


@needs_real_data
@pytest.mark.parametrize("order_id", [k for k, v in REAL_ORDERS.items() if v])
def test_real_orders_give_the_expected_events(
    real_orders: tuple[int, dict[str, OlistOrder]], order_id: str
) -> None:
    order = real_orders[1][order_id]
    events = list(iter_order_events(order))
    assert [(e["event_type"], e["event_time"], e["order"]["order_status"]) for e in events] == (
        REAL_ORDERS[order_id]
    )
    assert row_of_event(events[-1]) == olist_row(order)
    assert_valid_on_the_wire(events)


@needs_real_data
def test_real_order_without_payment(real_orders: tuple[int, dict[str, OlistOrder]]) -> None:
    order = real_orders[1]["bfbd0f9bdef84302105ad712db648a6c"]
    assert order.payments == ()
    events = list(iter_order_events(order))
    assert all(e["order"]["payments"] == [] for e in events)
    assert_valid_on_the_wire(events)


@needs_real_data
@pytest.mark.slow
def test_full_replay_gives_the_known_event_count_in_time_order_and_all_valid() -> None:
    counts: collections.Counter[str] = collections.Counter()
    final_status: dict[str, str] = {}
    previous = ""
    for event in replay_events(OLIST_DATA_DIR):
        assert event["event_time"] >= previous
        previous = event["event_time"]
        assert as_document(parse_event(event_key(event), encode_event(event))) == event
        counts[event["event_type"]] += 1
        final_status[event["order"]["order_id"]] = event["order"]["order_status"]
    assert counts == {
        "order_created": 99_441,
        "order_approved": 99_281,
        "order_shipped": 97_658,
        "order_delivered": 96_476,
        "order_status_changed": 1_950,
    }
    assert sum(counts.values()) == 394_806
    # The last event of each order carries Olist's final status (FACTS.md's counts).
    statuses = collections.Counter(final_status.values())
    assert statuses["delivered"] == 96_478 and statuses["canceled"] == 625
