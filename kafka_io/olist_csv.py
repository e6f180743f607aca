"""Olist orders as lifecycle events: the order model, the event rule of DESIGN.md, a reader of
a directory of Olist CSVs, and the bounded-memory merge that puts events in event-time order."""

from __future__ import annotations

import csv
import gzip
import heapq
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from kafka_io.contract import SCHEMA_VERSION, EventDocument

ORDERS = "olist_orders_dataset"
ORDER_ITEMS = "olist_order_items_dataset"
CUSTOMERS = "olist_customers_dataset"
PAYMENTS = "olist_order_payments_dataset"
PRODUCTS = "olist_products_dataset"


@dataclass(frozen=True, slots=True)
class OlistCustomer:
    customer_id: str
    customer_unique_id: str
    zip_code_prefix: str
    city: str
    state: str


@dataclass(frozen=True, slots=True)
class OlistItem:
    order_item_id: int
    product_id: str
    seller_id: str
    product_category: str | None
    shipping_limit_at: datetime
    price: Decimal
    freight_value: Decimal


@dataclass(frozen=True, slots=True)
class OlistPayment:
    payment_sequential: int
    payment_type: str
    payment_installments: int
    payment_value: Decimal


@dataclass(frozen=True, slots=True)
class OlistOrder:
    """One Olist order row joined with its customer, items and payments (the final state)."""

    order_id: str
    order_status: str
    purchased_at: datetime
    approved_at: datetime | None
    delivered_carrier_at: datetime | None
    delivered_customer_at: datetime | None
    estimated_delivery_date: date
    customer: OlistCustomer
    items: tuple[OlistItem, ...] = ()
    payments: tuple[OlistPayment, ...] = ()


@dataclass(frozen=True, slots=True)
class LifecycleStep:
    sequence: int
    event_type: str
    event_time: datetime
    order_status: str


# (timestamp attribute, event type, stage status), in stage order: the tie-break for equal times.
_STAGES = (
    ("purchased_at", "order_created", "created"),
    ("approved_at", "order_approved", "approved"),
    ("delivered_carrier_at", "order_shipped", "shipped"),
    ("delivered_customer_at", "order_delivered", "delivered"),
)
STATUS_CHANGED = "order_status_changed"


# --- The event rule (pure) ------------------------------------------------------------------


def lifecycle(order: OlistOrder) -> list[LifecycleStep]:
    """The order's events as (sequence, type, time, status) steps, per DESIGN.md's rule.

    A stage time earlier than the purchase (166 real orders were handed to the carrier before
    they were bought) is taken as the purchase time: an order cannot have an event before it
    exists, and its events then stay in time order. The snapshot still shows the real value.
    """
    purchased_at = order.purchased_at
    happened = sorted(
        (max(timestamp, purchased_at), rank)
        for rank, (attribute, _, _) in enumerate(_STAGES)
        if (timestamp := getattr(order, attribute)) is not None
    )
    steps = [
        LifecycleStep(sequence, _STAGES[rank][1], event_time, _STAGES[rank][2])
        for sequence, (event_time, rank) in enumerate(happened, start=1)
    ]
    last = steps[-1]
    if last.order_status != order.order_status:
        steps.append(
            LifecycleStep(len(steps) + 1, STATUS_CHANGED, last.event_time, order.order_status)
        )
    return steps


def iter_order_events(order: OlistOrder) -> Iterator[EventDocument]:
    """The order's lifecycle events, in sequence order; the last one reproduces the Olist row."""
    snapshot = _Snapshot.of(order)
    for step in lifecycle(order):
        yield snapshot.event(step)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """An order's fields already in wire format, rendered once for all its events; `event`
    gives the snapshot as known at a step's time."""

    order: OlistOrder
    purchased_at: str
    approved_at: str | None
    delivered_carrier_at: str | None
    delivered_customer_at: str | None
    estimated_delivery_date: str
    customer: dict[str, str]
    items: tuple[dict[str, Any], ...]
    payments: tuple[dict[str, Any], ...]

    @classmethod
    def of(cls, order: OlistOrder) -> _Snapshot:
        customer = order.customer
        return cls(
            order=order,
            purchased_at=_timestamp_text(order.purchased_at),
            approved_at=_optional_timestamp_text(order.approved_at),
            delivered_carrier_at=_optional_timestamp_text(order.delivered_carrier_at),
            delivered_customer_at=_optional_timestamp_text(order.delivered_customer_at),
            estimated_delivery_date=order.estimated_delivery_date.isoformat(),
            customer={
                "customer_id": customer.customer_id,
                "customer_unique_id": customer.customer_unique_id,
                "zip_code_prefix": customer.zip_code_prefix,
                "city": customer.city,
                "state": customer.state,
            },
            items=tuple(
                {
                    "order_item_id": item.order_item_id,
                    "product_id": item.product_id,
                    "seller_id": item.seller_id,
                    "product_category": item.product_category,
                    "shipping_limit_at": _timestamp_text(item.shipping_limit_at),
                    "price": item.price,
                    "freight_value": item.freight_value,
                }
                for item in sorted(order.items, key=lambda item: item.order_item_id)
            ),
            payments=tuple(
                {
                    "payment_sequential": payment.payment_sequential,
                    "payment_type": payment.payment_type,
                    "payment_installments": payment.payment_installments,
                    "payment_value": payment.payment_value,
                }
                for payment in sorted(order.payments, key=lambda p: p.payment_sequential)
            ),
        )

    def event(self, step: LifecycleStep) -> EventDocument:
        order = self.order
        at = step.event_time
        # A timestamp is null iff strictly later than the event: with the carrier-before-
        # approval quirk the carrier date is known at the shipped event, approval is not.
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": f"{order.order_id}:{step.sequence}",
            "event_type": step.event_type,  # type: ignore[typeddict-item]
            "event_time": _timestamp_text(at),
            "sequence": step.sequence,
            "order": {
                "order_id": order.order_id,
                "order_status": step.order_status,  # type: ignore[typeddict-item]
                "purchased_at": self.purchased_at,
                "approved_at": _known(self.approved_at, order.approved_at, at),
                "delivered_carrier_at": _known(
                    self.delivered_carrier_at, order.delivered_carrier_at, at
                ),
                "delivered_customer_at": _known(
                    self.delivered_customer_at, order.delivered_customer_at, at
                ),
                "estimated_delivery_date": self.estimated_delivery_date,
                # Fresh containers per event, so a consumer editing one event edits no other.
                "customer": dict(self.customer),  # type: ignore[typeddict-item]
                "items": [dict(item) for item in self.items],  # type: ignore[misc]
                "payments": [dict(payment) for payment in self.payments],  # type: ignore[misc]
            },
        }


def _known(text: str | None, timestamp: datetime | None, event_time: datetime) -> str | None:
    return None if timestamp is None or timestamp > event_time else text


def _timestamp_text(timestamp: datetime) -> str:
    return timestamp.isoformat(sep="T", timespec="seconds")


def _optional_timestamp_text(timestamp: datetime | None) -> str | None:
    return None if timestamp is None else _timestamp_text(timestamp)


# --- Event-time merge (shared by the CSV replay and the synthetic generator) -----------------


def events_in_time_order(orders: Iterable[OlistOrder]) -> Iterator[EventDocument]:
    """All events of `orders` (given in purchase-time order) in event-time order.

    Ties go by the order's position, then sequence. An order's events are never earlier than
    its purchase, so once the next order's purchase time is reached every pending event up to
    it is final: memory holds only the orders still in flight, never all events.
    """
    pending: list[tuple[datetime, int, int, _Snapshot, LifecycleStep]] = []
    previous: OlistOrder | None = None
    for position, order in enumerate(orders):
        if previous is not None and order.purchased_at < previous.purchased_at:
            raise ValueError(
                f"orders must come in purchase-time order: {order.order_id} purchased at "
                f"{order.purchased_at} follows {previous.order_id} at {previous.purchased_at}"
            )
        previous = order
        yield from _pop_until(pending, order.purchased_at)
        snapshot = _Snapshot.of(order)
        for step in lifecycle(order):
            heapq.heappush(pending, (step.event_time, position, step.sequence, snapshot, step))
    yield from _pop_until(pending, None)


def _pop_until(
    pending: list[tuple[datetime, int, int, _Snapshot, LifecycleStep]], until: datetime | None
) -> Iterator[EventDocument]:
    while pending and (until is None or pending[0][0] <= until):
        _, _, _, snapshot, step = heapq.heappop(pending)
        yield snapshot.event(step)


# --- Reading a directory of Olist CSVs --------------------------------------------------------


def replay_events(data_dir: str | Path) -> Iterator[EventDocument]:
    """Every event of every order in `data_dir`, in event-time order."""
    yield from events_in_time_order(read_orders(data_dir))


def read_orders(data_dir: str | Path) -> Iterator[OlistOrder]:
    """The orders of `data_dir` joined with their side tables, in purchase-time order.

    Side tables are loaded once (dimension-sized) and each order's rows are released as soon
    as the order is built, so memory falls as the replay goes on.
    """
    data_dir = Path(data_dir)
    customers = _customers_by_id(data_dir)
    items = _items_by_order(data_dir, _product_categories(data_dir))
    payments = _payments_by_order(data_dir)
    for row in _order_rows_by_purchase_time(data_dir):
        order_id, customer_id, status, purchased, approved, carrier, delivered, estimated = row
        try:
            customer = customers.pop(customer_id)
        except KeyError:
            raise ValueError(
                f"order {order_id}: customer_id {customer_id} is not in {CUSTOMERS}"
            ) from None
        yield OlistOrder(
            order_id=order_id,
            order_status=status,
            purchased_at=datetime.fromisoformat(purchased),
            approved_at=_optional_timestamp(approved),
            delivered_carrier_at=_optional_timestamp(carrier),
            delivered_customer_at=_optional_timestamp(delivered),
            # Olist stores the estimate as a timestamp that is always midnight.
            estimated_delivery_date=datetime.fromisoformat(estimated).date(),
            customer=customer,
            items=tuple(sorted(items.pop(order_id, ()), key=lambda i: i.order_item_id)),
            payments=tuple(sorted(payments.pop(order_id, ()), key=lambda p: p.payment_sequential)),
        )


def table_path(data_dir: Path, table: str) -> Path:
    """The file of an Olist table in `data_dir`, gzip-compressed or plain."""
    for suffix in (".csv.gz", ".csv"):
        path = data_dir / f"{table}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"{table}.csv(.gz) not found in {data_dir}")


def _open_text(path: Path) -> IO[str]:
    # utf-8-sig: some Olist copies (the translation table) start with a byte-order mark.
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _rows(data_dir: Path, table: str, columns: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """The table's rows as tuples of `columns`, in that order (empty string for NULL)."""
    path = table_path(data_dir, table)
    with _open_text(path) as file:
        reader = csv.reader(file)
        header = next(reader, [])
        missing = [column for column in columns if column not in header]
        if missing:
            raise ValueError(f"{path.name} lacks columns {missing}")
        pick = itemgetter(*[header.index(column) for column in columns])
        for row in reader:
            yield pick(row)


_ORDER_COLUMNS = (
    "order_id",
    "customer_id",
    "order_status",
    "order_purchase_timestamp",
    "order_approved_at",
    "order_delivered_carrier_date",
    "order_delivered_customer_date",
    "order_estimated_delivery_date",
)
_PURCHASE = _ORDER_COLUMNS.index("order_purchase_timestamp")


def _order_rows_by_purchase_time(data_dir: Path) -> Iterator[tuple[str, ...]]:
    # Our copy is sorted by purchase time and streams; Kaggle's original is not, and costs one
    # in-memory sort of the orders table. The fixed "YYYY-MM-DD HH:MM:SS" text sorts as time.
    previous = ""
    for row in _rows(data_dir, ORDERS, _ORDER_COLUMNS):
        if row[_PURCHASE] < previous:
            rows = _rows(data_dir, ORDERS, _ORDER_COLUMNS)
            yield from sorted(rows, key=itemgetter(_PURCHASE))
            return
        previous = row[_PURCHASE]
    yield from _rows(data_dir, ORDERS, _ORDER_COLUMNS)


def _product_categories(data_dir: Path) -> dict[str, str | None]:
    rows = _rows(data_dir, PRODUCTS, ("product_id", "product_category_name"))
    return {product_id: _intern_or_none(category) for product_id, category in rows}


def _customers_by_id(data_dir: Path) -> dict[str, OlistCustomer]:
    columns = (
        "customer_id",
        "customer_unique_id",
        "customer_zip_code_prefix",
        "customer_city",
        "customer_state",
    )
    return {
        customer_id: OlistCustomer(
            customer_id, unique_id, zip_code_prefix, sys.intern(city), sys.intern(state)
        )
        for customer_id, unique_id, zip_code_prefix, city, state in _rows(
            data_dir, CUSTOMERS, columns
        )
    }


def _items_by_order(
    data_dir: Path, categories: dict[str, str | None]
) -> dict[str, list[OlistItem]]:
    columns = (
        "order_id",
        "order_item_id",
        "product_id",
        "seller_id",
        "shipping_limit_date",
        "price",
        "freight_value",
    )
    by_order: dict[str, list[OlistItem]] = {}
    for order_id, item_id, product_id, seller_id, limit, price, freight in _rows(
        data_dir, ORDER_ITEMS, columns
    ):
        product_id = sys.intern(product_id)  # products and sellers repeat across orders
        item = OlistItem(
            order_item_id=int(item_id),
            product_id=product_id,
            seller_id=sys.intern(seller_id),
            product_category=categories.get(product_id),
            shipping_limit_at=datetime.fromisoformat(limit),
            price=Decimal(price),
            freight_value=Decimal(freight),
        )
        by_order.setdefault(order_id, []).append(item)
    return by_order


def _payments_by_order(data_dir: Path) -> dict[str, list[OlistPayment]]:
    columns = (
        "order_id",
        "payment_sequential",
        "payment_type",
        "payment_installments",
        "payment_value",
    )
    by_order: dict[str, list[OlistPayment]] = {}
    for order_id, sequential, payment_type, installments, value in _rows(
        data_dir, PAYMENTS, columns
    ):
        payment = OlistPayment(
            payment_sequential=int(sequential),
            payment_type=sys.intern(payment_type),
            payment_installments=int(installments),
            payment_value=Decimal(value),
        )
        by_order.setdefault(order_id, []).append(payment)
    return by_order


def _intern_or_none(text: str) -> str | None:
    return sys.intern(text) if text else None


def _optional_timestamp(text: str) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
