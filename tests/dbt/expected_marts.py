"""The marts recomputed in Python (Decimal) straight from the Olist CSVs.

Independent of the SQL and of the event stream (it reads the CSV rows itself, not through
`kafka_io.olist_csv`): the dbt tests compare the marts with this, to the cent, for the orders
they loaded.
"""

from __future__ import annotations

import csv
import gzip
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

CENT = Decimal("0.01")
NON_REVENUE_STATUSES = {"canceled", "unavailable"}


@dataclass(frozen=True)
class OlistData:
    """The Olist CSV rows the marts derive from, keyed for lookup (orders by purchase time)."""

    orders: list[dict[str, str]]
    customers: dict[str, dict[str, str]]
    items: dict[str, list[dict[str, str]]]
    payments: dict[str, list[dict[str, str]]]


def read_csv(path: Path) -> Iterator[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as handle:
        yield from csv.DictReader(handle)


def read_olist(data_dir: Path) -> OlistData:
    items: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in read_csv(data_dir / "olist_order_items_dataset.csv.gz"):
        items[row["order_id"]].append(row)
    payments: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in read_csv(data_dir / "olist_order_payments_dataset.csv.gz"):
        payments[row["order_id"]].append(row)
    orders = list(read_csv(data_dir / "olist_orders_dataset.csv.gz"))
    orders.sort(key=lambda o: o["order_purchase_timestamp"])  # stable: already sorted in ours
    return OlistData(
        orders=orders,
        customers={
            row["customer_id"]: row for row in read_csv(data_dir / "olist_customers_dataset.csv.gz")
        },
        items=dict(items),
        payments=dict(payments),
    )


def parse_ts(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def expected_fact_orders(orders: Iterable[dict[str, str]], data: OlistData) -> dict[str, dict]:
    facts = {}
    for order in orders:
        order_id = order["order_id"]
        customer = data.customers[order["customer_id"]]
        items = data.items.get(order_id, [])
        payments = data.payments.get(order_id, [])
        purchased_at = parse_ts(order["order_purchase_timestamp"])
        delivered_at = parse_ts(order["order_delivered_customer_date"])
        estimated = parse_ts(order["order_estimated_delivery_date"]).date()
        total_price = sum((Decimal(item["price"]) for item in items), Decimal(0))
        total_freight = sum((Decimal(item["freight_value"]) for item in items), Decimal(0))
        facts[order_id] = {
            "order_id": order_id,
            "customer_unique_id": customer["customer_unique_id"],
            "customer_id": order["customer_id"],
            "customer_state": customer["customer_state"],
            "customer_city": customer["customer_city"],
            "order_status": order["order_status"],
            "purchased_at": purchased_at,
            "order_date": purchased_at.date(),
            "approved_at": parse_ts(order["order_approved_at"]),
            "delivered_carrier_at": parse_ts(order["order_delivered_carrier_date"]),
            "delivered_customer_at": delivered_at,
            "estimated_delivery_date": estimated,
            "item_count": len(items),
            "total_price": total_price,
            "total_freight": total_freight,
            "order_value": total_price + total_freight,
            "total_payment": sum(
                (Decimal(payment["payment_value"]) for payment in payments), Decimal(0)
            ),
            "payment_count": len(payments),
            "delivery_days": None
            if delivered_at is None
            else (Decimal((delivered_at - purchased_at).total_seconds()) / 86400).quantize(
                CENT, ROUND_HALF_UP
            ),
            "is_late": None if delivered_at is None else delivered_at.date() > estimated,
        }
    return facts


def is_revenue(fact: dict) -> bool:
    return fact["order_status"] not in NON_REVENUE_STATUSES


def expected_dim_customers(facts: dict[str, dict], data: OlistData) -> dict[str, dict]:
    by_customer: dict[str, list[dict]] = defaultdict(list)
    for fact in facts.values():
        by_customer[fact["customer_unique_id"]].append(fact)
    customers = {}
    for customer_unique_id, orders in by_customer.items():
        latest = max(orders, key=lambda o: (o["purchased_at"], o["order_id"]))
        latest_customer = data.customers[latest["customer_id"]]
        customers[customer_unique_id] = {
            "customer_unique_id": customer_unique_id,
            "zip_code_prefix": latest_customer["customer_zip_code_prefix"],
            "city": latest_customer["customer_city"],
            "state": latest_customer["customer_state"],
            "first_order_at": min(o["purchased_at"] for o in orders),
            "last_order_at": max(o["purchased_at"] for o in orders),
            "total_orders": len(orders),
            "lifetime_value": sum((o["order_value"] for o in orders if is_revenue(o)), Decimal(0)),
        }
    return customers


def expected_agg_daily_revenue(facts: dict[str, dict]) -> dict[tuple, dict]:
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for fact in facts.values():
        cells[(fact["order_date"], fact["customer_state"])].append(fact)
    rows = {}
    for (order_date, state), orders in cells.items():
        revenue = [o for o in orders if is_revenue(o)]
        total_revenue = sum((o["total_price"] for o in revenue), Decimal(0))
        rows[(order_date, state)] = {
            "order_date": order_date,
            "customer_state": state,
            "order_count": len(orders),
            "canceled_count": sum(1 for o in orders if o["order_status"] == "canceled"),
            "revenue_order_count": len(revenue),
            "total_revenue": total_revenue,
            "total_freight": sum((o["total_freight"] for o in revenue), Decimal(0)),
            "total_payment": sum((o["total_payment"] for o in revenue), Decimal(0)),
            "avg_order_value": (total_revenue / len(revenue)).quantize(CENT, ROUND_HALF_UP)
            if revenue
            else None,
            "items_sold": sum(o["item_count"] for o in revenue),
        }
    return rows


def sample_orders(data: OlistData, first: int = 3000) -> list[dict[str, str]]:
    """The first `first` orders (by purchase time) plus every quirk worth a test."""
    chosen: dict[str, dict[str, str]] = {o["order_id"]: o for o in data.orders[:first]}

    def add(orders: Iterable[dict[str, str]], limit: int) -> None:
        for order in list(orders)[:limit]:
            chosen.setdefault(order["order_id"], order)

    add((o for o in data.orders if o["order_id"] not in data.items), 25)  # no items
    add((o for o in data.orders if o["order_id"] not in data.payments), 5)  # no payment
    for status in ("canceled", "unavailable", "created", "approved", "invoiced", "processing"):
        add((o for o in data.orders if o["order_status"] == status), 15)
    add((o for o in data.orders if len(data.items.get(o["order_id"], [])) > 5), 10)
    add((o for o in data.orders if len(data.payments.get(o["order_id"], [])) > 3), 10)
    add(  # canceled although delivered
        (
            o
            for o in data.orders
            if o["order_status"] == "canceled" and o["order_delivered_customer_date"]
        ),
        6,
    )
    add(  # handed to the carrier before approval
        (
            o
            for o in data.orders
            if o["order_approved_at"]
            and o["order_delivered_carrier_date"]
            and o["order_delivered_carrier_date"] < o["order_approved_at"]
        ),
        10,
    )
    add(  # handed to the carrier before purchase: the replay's events start at the purchase
        (
            o
            for o in data.orders
            if o["order_delivered_carrier_date"]
            and o["order_delivered_carrier_date"] < o["order_purchase_timestamp"]
        ),
        10,
    )
    # Every order of a few repeat customers, so dim_customers aggregates several orders.
    orders_by_person: dict[str, list[dict[str, str]]] = defaultdict(list)
    for order in data.orders:
        person = data.customers[order["customer_id"]]["customer_unique_id"]
        orders_by_person[person].append(order)
    repeaters = sorted(
        (orders for orders in orders_by_person.values() if len(orders) >= 3),
        key=lambda orders: (-len(orders), orders[0]["order_id"]),
    )
    for orders in repeaters[:8]:
        add(orders, len(orders))
    return list(chosen.values())
