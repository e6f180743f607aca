"""Olist-shaped synthetic orders for runs of any size: the shares and spreads of the real data
(../shared/data/olist/FACTS.md), deterministic per seed, streamed in purchase-time order."""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import accumulate, pairwise
from typing import Generic, TypeVar

from kafka_io.contract import EventDocument
from kafka_io.olist_csv import (
    OlistCustomer,
    OlistItem,
    OlistOrder,
    OlistPayment,
    events_in_time_order,
)

DEFAULT_START = datetime(2017, 1, 1)
# The dense period of the real data (2017-01..2018-08) averages about 215 orders a day.
DEFAULT_ORDERS_PER_DAY = 220.0

T = TypeVar("T")


@dataclass(frozen=True)
class _Weighted(Generic[T]):
    """A categorical distribution; weights are counts or shares as measured."""

    values: Sequence[T]
    weights: Sequence[float]
    _cumulative: list[float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cumulative", list(accumulate(self.weights)))

    def draw(self, rng: random.Random) -> T:
        return self.values[bisect(self._cumulative, rng.random() * self._cumulative[-1])]


def _weighted(table: dict[T, float]) -> _Weighted[T]:
    return _Weighted(list(table), list(table.values()))


_Z95 = 1.6448536269514722  # standard normal quantile at 0.95


@dataclass(frozen=True)
class _SkewedSpread:
    """Split log-normal through measured p5/p50/p95, each side fitted to its own tail (Olist's
    durations are far more skewed above the median than below), clipped to [low, high]."""

    p5: float
    p50: float
    p95: float
    low: float = 0.0
    high: float = math.inf
    # The sigma of each side, computed once (the same floats as per draw: the same bytes).
    _sigmas: tuple[float, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sigmas = tuple(abs(math.log(tail / self.p50)) / _Z95 for tail in (self.p5, self.p95))
        object.__setattr__(self, "_sigmas", sigmas)

    def draw(self, rng: random.Random) -> float:
        z = rng.gauss(0.0, 1.0)
        sigma = self._sigmas[z >= 0]
        return min(max(self.p50 * math.exp(sigma * z), self.low), self.high)


# --- Distributions (FACTS.md unless marked "measured": counted on the real CSVs) --------------

STATUS = _weighted(
    {
        "delivered": 96_478,
        "shipped": 1_107,
        "canceled": 625,
        "unavailable": 609,
        "invoiced": 314,
        "processing": 301,
        "created": 5,
        "approved": 2,
    }
)
# Which of (approved, delivered_carrier, delivered_customer) are present, per final status
# (measured). Delivered orders missing a date and canceled orders with one are real quirks.
PRESENT_TIMESTAMPS: dict[str, _Weighted[tuple[bool, bool, bool]]] = {
    "delivered": _weighted(
        {
            (True, True, True): 96_455,
            (False, True, True): 14,
            (True, True, False): 7,
            (True, False, True): 1,
            (True, False, False): 1,
        }
    ),
    "canceled": _weighted(
        {
            (True, False, False): 409,
            (False, False, False): 141,
            (True, True, False): 69,
            (True, True, True): 6,
        }
    ),
    "shipped": _weighted({(True, True, False): 1}),
    "unavailable": _weighted({(True, False, False): 1}),
    "invoiced": _weighted({(True, False, False): 1}),
    "processing": _weighted({(True, False, False): 1}),
    "approved": _weighted({(True, False, False): 1}),
    "created": _weighted({(False, False, False): 1}),
}
# Share of orders without items, per final status (measured; 775 of 99,441 overall).
NO_ITEMS_SHARE = {
    "unavailable": 603 / 609,
    "canceled": 164 / 625,
    "created": 5 / 5,
    "invoiced": 2 / 314,
    "shipped": 1 / 1_107,
}
NO_PAYMENT_SHARE = 1 / 99_441

HOUR_SHARE = (
    2.4, 1.2, 0.5, 0.3, 0.2, 0.2, 0.5, 1.2, 3.0, 4.8, 6.2, 6.6,
    6.0, 6.6, 6.6, 6.5, 6.7, 6.2, 5.8, 6.0, 6.2, 6.3, 5.8, 4.1,
)  # fmt: skip
WEEKDAY_SHARE = (16.3, 16.1, 15.6, 14.8, 14.2, 10.9, 12.0)  # Monday first

PURCHASE_TO_APPROVED_HOURS = _SkewedSpread(0.14, 0.34, 48.46, high=4_509.2)
APPROVED_TO_CARRIER_DAYS = _SkewedSpread(0.25, 1.82, 8.10, high=125.8)
CARRIER_TO_CUSTOMER_DAYS = _SkewedSpread(1.12, 7.10, 24.21, high=205.2)
PURCHASE_TO_ESTIMATE_DAYS = _SkewedSpread(10.47, 23.24, 38.48, low=2.0, high=155.1)
PURCHASE_TO_SHIPPING_LIMIT_DAYS = _SkewedSpread(3.01, 6.01, 12.03, low=2.0, high=60.0)
# 1,359 of 97,644 orders reached the carrier before approval; 166 of them even before the
# purchase, by minutes to hours (measured). 23 of 96,475 were delivered "before" shipping.
CARRIER_BEFORE_APPROVAL_SHARE = 1_359 / 97_644
CARRIER_BEFORE_PURCHASE_SHARE = 166 / 1_359
CUSTOMER_BEFORE_CARRIER_SHARE = 23 / 96_475
EARLY_DELIVERY_DAYS = _SkewedSpread(0.02, 1.0, 7.0, high=7.2)

PRICE = _SkewedSpread(17.00, 74.99, 349.90, low=0.85, high=6_735.00)
FREIGHT = _SkewedSpread(7.78, 16.26, 45.12, low=0.01, high=409.68)
FREE_FREIGHT_SHARE = 383 / 112_650
ORDER_VALUE_WITHOUT_ITEMS = _SkewedSpread(32.38, 105.29, 450.53, low=9.59, high=13_664.08)
# 0.39% of orders paid more than price + freight (card interest).
SURCHARGED_SHARE = 1 - 0.9961

ITEMS_PER_ORDER = _weighted(
    {1: 88_863, 2: 7_516, 3: 1_322, 4: 505, 5: 204, 6: 198, 7: 22, 8: 8, 9: 3, 10: 8,
     11: 4, 12: 5, 13: 1, 14: 2, 15: 2, 20: 2, 21: 1}
)  # fmt: skip
# Of orders with several items, 3,236 of 9,803 hold more than one distinct product.
MIXED_PRODUCTS_SHARE = 3_236 / 9_803

# Payment rows per order (measured); orders with 9..29 rows are lumped into one bucket.
PAYMENT_ROWS = _weighted({1: 96_479, 2: 2_382, 3: 301, 4: 108, 5: 52, 6: 36, 7: 28, 8: 11, 9: 43})
# One-row orders by type: FACTS' orders-per-type less the multi-row orders (measured).
SINGLE_PAYMENT_TYPE = _weighted(
    {"credit_card": 73_972, "boleto": 19_784, "debit_card": 1_526, "voucher": 1_194,
     "not_defined": 3}
)  # fmt: skip
# Multi-row orders (measured): vouchers topped up by a card, vouchers only, cards only.
MULTI_PAYMENT_MIX = _weighted({"vouchers_and_card": 2_245, "vouchers": 427, "cards": 287})
CARD_INSTALLMENTS = _weighted(
    {1: 33.1, 2: 16.2, 3: 13.6, 4: 9.2, 5: 6.8, 6: 5.1, 7: 2.1, 8: 5.6, 9: 0.8, 10: 6.9,
     12: 0.2, 15: 0.1}
)  # fmt: skip

# Share of orders from a customer_unique_id seen before: (99,441 - 96,096) / 99,441.
RETURNING_CUSTOMER_SHARE = 3_345 / 99_441
# Returning customers are drawn from this many most recent new customers (bounded memory).
CUSTOMER_POOL_SIZE = 20_000

# Customers per state (measured; FACTS gives the top 10 and "other 17 states 9.54%").
STATE = _weighted(
    {"SP": 41_746, "RJ": 12_852, "MG": 11_635, "RS": 5_466, "PR": 5_045, "SC": 3_637,
     "BA": 3_380, "DF": 2_140, "ES": 2_033, "GO": 2_020, "PE": 1_652, "CE": 1_336, "PA": 975,
     "MT": 907, "MA": 747, "MS": 715, "PB": 536, "PI": 495, "RN": 485, "AL": 413, "SE": 350,
     "TO": 280, "RO": 253, "AM": 148, "AC": 81, "AP": 68, "RR": 46}
)  # fmt: skip
STATE_SHARE = {
    state: weight / sum(STATE.weights)
    for state, weight in zip(STATE.values, STATE.weights, strict=True)
}
# Postal code (CEP) prefix ranges: the first range of each state, then the big cities'.
STATE_ZIP_RANGE = {
    "SP": (1000, 19999), "RJ": (20000, 28999), "ES": (29000, 29999), "MG": (30000, 39999),
    "BA": (40000, 48999), "SE": (49000, 49999), "PE": (50000, 56999), "AL": (57000, 57999),
    "PB": (58000, 58999), "RN": (59000, 59999), "CE": (60000, 63999), "PI": (64000, 64999),
    "MA": (65000, 65999), "PA": (66000, 68899), "AP": (68900, 68999), "AM": (69000, 69299),
    "RR": (69300, 69399), "AC": (69900, 69999), "DF": (70000, 72799), "GO": (72800, 76799),
    "RO": (76800, 76999), "TO": (77000, 77999), "MT": (78000, 78899), "MS": (79000, 79999),
    "PR": (80000, 87999), "SC": (88000, 89999), "RS": (90000, 99999),
}  # fmt: skip
# (city, state, share of all customers, CEP prefix range), FACTS' top 10 cities.
TOP_CITIES = (
    ("sao paulo", "SP", 15.63, 1000, 5999),
    ("rio de janeiro", "RJ", 6.92, 20000, 23799),
    ("belo horizonte", "MG", 2.79, 30000, 31999),
    ("brasilia", "DF", 2.14, 70000, 72799),
    ("curitiba", "PR", 1.53, 80000, 82999),
    ("campinas", "SP", 1.45, 13000, 13139),
    ("porto alegre", "RS", 1.39, 90000, 91999),
    ("salvador", "BA", 1.25, 40000, 42599),
    ("guarulhos", "SP", 1.20, 7000, 7399),
    ("sao bernardo do campo", "SP", 0.94, 9600, 9899),
)
SMALLER_CITIES_PER_STATE = 150

# Categories by items sold: FACTS' top 10 (under their Portuguese names, as in the data), the
# rest spread over other real category names, and 1.42% of items without a category.
CATEGORY = _weighted(
    {"cama_mesa_banho": 9.87, "beleza_saude": 8.58, "esporte_lazer": 7.67,
     "moveis_decoracao": 7.40, "informatica_acessorios": 6.95, "utilidades_domesticas": 6.18,
     "relogios_presentes": 5.32, "telefonia": 4.03, "ferramentas_jardim": 3.86,
     "automotivo": 3.76, None: 1.42}
    | dict.fromkeys(
        ["brinquedos", "cool_stuff", "perfumaria", "bebes", "eletronicos", "papelaria",
         "fashion_bolsas_e_acessorios", "pet_shop", "moveis_escritorio", "consoles_games",
         "malas_acessorios", "construcao_ferramentas_construcao", "eletrodomesticos",
         "instrumentos_musicais", "eletroportateis", "casa_construcao", "livros_interesse_geral",
         "alimentos", "moveis_sala", "casa_conforto", "bebidas", "audio", "market_place",
         "climatizacao", "pc_gamer"],
        (100 - 63.62 - 1.42) / 25,
    )
)  # fmt: skip
CATALOG_PRODUCTS = 32_951
CATALOG_SELLERS = 3_095


@dataclass(frozen=True, slots=True)
class _Product:
    product_id: str
    seller_id: str
    category: str | None
    price: Decimal


@dataclass(frozen=True, slots=True)
class _Address:
    customer_unique_id: str
    zip_code_prefix: str
    city: str
    state: str


def synthetic_orders(
    n: int,
    seed: int = 42,
    start: datetime = DEFAULT_START,
    orders_per_day: float = DEFAULT_ORDERS_PER_DAY,
) -> Iterator[OlistOrder]:
    """`n` Olist-shaped orders in purchase-time order, the same for the same arguments.

    `start` is a naive local (Brazil) time, as Olist's timestamps are. Memory holds a fixed
    catalog and a bounded pool of returning customers, never the orders. The catalog is drawn
    first, so the first k orders do not depend on n.
    """
    if start.tzinfo is not None:
        raise ValueError("start must be a naive local time, like Olist's timestamps")
    factory = _OrderFactory(random.Random(seed), start, orders_per_day)
    for _ in range(n):
        yield factory.next_order()


def synthetic_events(
    n: int,
    seed: int = 42,
    start: datetime = DEFAULT_START,
    orders_per_day: float = DEFAULT_ORDERS_PER_DAY,
) -> Iterator[EventDocument]:
    """The events of `synthetic_orders(n, seed, ...)`, in event-time order."""
    return events_in_time_order(synthetic_orders(n, seed, start, orders_per_day))


class _OrderFactory:
    """Draws orders one at a time from one `random.Random`, so a seed fixes every byte."""

    def __init__(self, rng: random.Random, start: datetime, orders_per_day: float) -> None:
        self.rng = rng
        self.start = start
        self.seconds = 0.0
        weights = [hour * day for day in WEEKDAY_SHARE for hour in HOUR_SHARE]
        self.peak_weight = max(weights)
        mean_acceptance = sum(weights) / len(weights) / self.peak_weight
        self.peak_rate = orders_per_day / 86_400 / mean_acceptance
        self.sellers = [self.hex_id() for _ in range(CATALOG_SELLERS)]
        self.products = [self.product() for _ in range(CATALOG_PRODUCTS)]
        self.city_by_state = _cities_by_state()
        self.returning: list[_Address] = []  # ring buffer of recent new customers
        self.new_customers = 0

    def hex_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def skewed_index(self, size: int) -> int:
        # A few products and sellers take many sales, as in Olist: with 32,951 products the
        # busiest gets about 0.5% of items (real max 527 of 112,650), most get one or none.
        return int(size * self.rng.random() ** 2)

    def product(self) -> _Product:
        return _Product(
            product_id=self.hex_id(),
            seller_id=self.sellers[self.skewed_index(CATALOG_SELLERS)],
            category=CATEGORY.draw(self.rng),
            price=_cents(PRICE.draw(self.rng)),
        )

    def next_purchase(self) -> datetime:
        # Poisson arrivals thinned by hour-of-day and weekday shares: a non-homogeneous
        # process, increasing by construction, so orders stream in purchase order.
        rng = self.rng
        while True:
            self.seconds += rng.expovariate(self.peak_rate)
            moment = self.start + timedelta(seconds=int(self.seconds))
            weight = HOUR_SHARE[moment.hour] * WEEKDAY_SHARE[moment.weekday()]
            if rng.random() * self.peak_weight < weight:
                return moment

    def next_order(self) -> OlistOrder:
        rng = self.rng
        purchased_at = self.next_purchase()
        status = STATUS.draw(rng)
        approved_at, carrier_at, customer_at = self.lifecycle(purchased_at, status)
        items = self.items(purchased_at, status)
        total = sum((item.price + item.freight_value for item in items), Decimal("0.00"))
        if not items:
            total = _cents(ORDER_VALUE_WITHOUT_ITEMS.draw(rng))
        elif rng.random() < SURCHARGED_SHARE:
            total = _cents(float(total) * rng.uniform(1.01, 1.15))
        estimate_days = PURCHASE_TO_ESTIMATE_DAYS.draw(rng)
        return OlistOrder(
            order_id=self.hex_id(),
            order_status=status,
            purchased_at=purchased_at,
            approved_at=approved_at,
            delivered_carrier_at=carrier_at,
            delivered_customer_at=customer_at,
            estimated_delivery_date=(purchased_at + timedelta(days=estimate_days)).date(),
            customer=self.customer(),
            items=items,
            payments=self.payments(total),
        )

    def lifecycle(
        self, purchased_at: datetime, status: str
    ) -> tuple[datetime | None, datetime | None, datetime | None]:
        """(approved_at, delivered_carrier_at, delivered_customer_at) for a final status."""
        rng = self.rng
        approved_at = purchased_at + _hours(PURCHASE_TO_APPROVED_HOURS.draw(rng))
        if rng.random() < CARRIER_BEFORE_APPROVAL_SHARE:
            if rng.random() < CARRIER_BEFORE_PURCHASE_SHARE:
                carrier_at = purchased_at - timedelta(minutes=rng.uniform(1, 120))
            else:
                carrier_at = purchased_at + (approved_at - purchased_at) * rng.random()
        else:
            carrier_at = approved_at + _days(APPROVED_TO_CARRIER_DAYS.draw(rng))
        if rng.random() < CUSTOMER_BEFORE_CARRIER_SHARE:
            # Never before the purchase, as in the real data.
            customer_at = max(carrier_at - _days(EARLY_DELIVERY_DAYS.draw(rng)), purchased_at)
        else:
            customer_at = carrier_at + _days(CARRIER_TO_CUSTOMER_DAYS.draw(rng))
        has_approved, has_carrier, has_customer = PRESENT_TIMESTAMPS[status].draw(rng)
        return (
            _whole_seconds(approved_at) if has_approved else None,
            _whole_seconds(carrier_at) if has_carrier else None,
            _whole_seconds(customer_at) if has_customer else None,
        )

    def items(self, purchased_at: datetime, status: str) -> tuple[OlistItem, ...]:
        rng = self.rng
        if rng.random() < NO_ITEMS_SHARE.get(status, 0.0):
            return ()
        count = ITEMS_PER_ORDER.draw(rng)
        mixed = count > 1 and rng.random() < MIXED_PRODUCTS_SHARE
        shipping_limit_at = _whole_seconds(
            purchased_at + _days(PURCHASE_TO_SHIPPING_LIMIT_DAYS.draw(rng))
        )
        product = self.products[self.skewed_index(CATALOG_PRODUCTS)]
        items = []
        for order_item_id in range(1, count + 1):
            if mixed and order_item_id > 1:
                product = self.products[self.skewed_index(CATALOG_PRODUCTS)]
            freight = Decimal("0.00")
            if rng.random() >= FREE_FREIGHT_SHARE:
                freight = _cents(FREIGHT.draw(rng))
            items.append(
                OlistItem(
                    order_item_id=order_item_id,
                    product_id=product.product_id,
                    seller_id=product.seller_id,
                    product_category=product.category,
                    shipping_limit_at=shipping_limit_at,
                    price=product.price,
                    freight_value=freight,
                )
            )
        return tuple(items)

    def payments(self, total: Decimal) -> tuple[OlistPayment, ...]:
        rng = self.rng
        if rng.random() < NO_PAYMENT_SHARE:
            return ()
        rows = PAYMENT_ROWS.draw(rng)
        if rows == 1:
            types = [SINGLE_PAYMENT_TYPE.draw(rng)]
        else:
            rows = rng.randint(9, 29) if rows == 9 else rows
            mix = MULTI_PAYMENT_MIX.draw(rng)
            if mix == "vouchers_and_card":
                types = ["credit_card"] + ["voucher"] * (rows - 1)
            else:
                types = [{"vouchers": "voucher", "cards": "credit_card"}[mix]] * rows
        values = _split_cents(total, len(types), rng)
        return tuple(
            OlistPayment(
                payment_sequential=sequential,
                payment_type=payment_type,
                payment_installments=(
                    CARD_INSTALLMENTS.draw(rng) if payment_type == "credit_card" else 1
                ),
                payment_value=value,
            )
            for sequential, (payment_type, value) in enumerate(
                zip(types, values, strict=True), start=1
            )
        )

    def customer(self) -> OlistCustomer:
        rng = self.rng
        if self.returning and rng.random() < RETURNING_CUSTOMER_SHARE:
            address = self.returning[rng.randrange(len(self.returning))]
        else:
            address = self.new_address()
        # Olist's customer_id is one per order; customer_unique_id is the person.
        return OlistCustomer(
            customer_id=self.hex_id(),
            customer_unique_id=address.customer_unique_id,
            zip_code_prefix=address.zip_code_prefix,
            city=address.city,
            state=address.state,
        )

    def new_address(self) -> _Address:
        rng = self.rng
        state = STATE.draw(rng)
        city, (zip_low, zip_high) = self.city_by_state[state].draw(rng)
        address = _Address(
            customer_unique_id=self.hex_id(),
            zip_code_prefix=f"{rng.randint(zip_low, zip_high):05d}",
            city=city,
            state=state,
        )
        if len(self.returning) < CUSTOMER_POOL_SIZE:
            self.returning.append(address)
        else:
            self.returning[self.new_customers % CUSTOMER_POOL_SIZE] = address
        self.new_customers += 1
        return address


def _cities_by_state() -> dict[str, _Weighted[tuple[str, tuple[int, int]]]]:
    """Per state, P(city | state): FACTS' top cities, the rest spread over smaller cities."""
    by_state = {}
    for state, zip_range in STATE_ZIP_RANGE.items():
        top = [
            (city, (low, high), share / 100 / STATE_SHARE[state])
            for city, city_state, share, low, high in TOP_CITIES
            if city_state == state
        ]
        rest = max(1.0 - sum(weight for _, _, weight in top), 0.0)
        smaller = [
            (f"cidade {state.lower()} {k:03d}", zip_range, rest / SMALLER_CITIES_PER_STATE)
            for k in range(1, SMALLER_CITIES_PER_STATE + 1)
        ]
        cities = top + smaller
        by_state[state] = _Weighted(
            [(city, zips) for city, zips, _ in cities], [weight for _, _, weight in cities]
        )
    return by_state


def _split_cents(total: Decimal, parts: int, rng: random.Random) -> list[Decimal]:
    """`total` cut into `parts` random non-negative amounts that add up to it exactly."""
    if parts == 1:
        return [total]
    cents = int(total * 100)
    cuts = sorted(rng.randint(0, cents) for _ in range(parts - 1))
    bounds = [0, *cuts, cents]
    return [Decimal(high - low).scaleb(-2) for low, high in pairwise(bounds)]


def _cents(amount: float) -> Decimal:
    return Decimal(round(amount * 100)).scaleb(-2)


def _hours(hours: float) -> timedelta:
    return timedelta(hours=hours)


def _days(days: float) -> timedelta:
    return timedelta(days=days)


def _whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)
