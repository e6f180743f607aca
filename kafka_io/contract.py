"""The order event contract of topic `olist.orders`: typed shape, encoding, and the one parser
that turns raw Kafka bytes into an `Event` or a `Rejection` with a groupable reason."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal

import msgspec
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

SCHEMA_VERSION = 1
# Kafka's default max.message.bytes is 1,048,588; stay under it so the producer never has to
# split and the consumer can refuse anything bigger before spending time decoding it.
MAX_MESSAGE_BYTES = 1_000_000
# Bounds the size of a reason string written to the dead-letter table.
MAX_REASON_CHARS = 500

EventType = Literal[
    "order_created", "order_approved", "order_shipped", "order_delivered", "order_status_changed"
]
OrderStatus = Literal[
    "created",
    "approved",
    "invoiced",
    "processing",
    "shipped",
    "delivered",
    "canceled",
    "unavailable",
]
PaymentType = Literal["credit_card", "boleto", "voucher", "debit_card", "not_defined"]

# Stable reason prefixes: the dead-letter table and the tests group rejections by them.
EMPTY = "empty"
OVERSIZED = "oversized"
NOT_UTF8 = "not_utf8"
INVALID_JSON = "invalid_json"
UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
SCHEMA_VIOLATION = "schema_violation"
KEY_MISMATCH = "key_mismatch"
EVENT_ID_MISMATCH = "event_id_mismatch"
# A record the contract accepted but PostgreSQL refused (set by the consumer's writer).
DB_REJECTED = "db_rejected"
REASON_KINDS = (
    EMPTY,
    OVERSIZED,
    NOT_UTF8,
    INVALID_JSON,
    UNKNOWN_SCHEMA_VERSION,
    SCHEMA_VIOLATION,
    KEY_MISMATCH,
    EVENT_ID_MISMATCH,
    DB_REJECTED,
)


def load_schema() -> dict[str, Any]:
    """The JSON Schema shipped next to this module, its numbers read as Decimal.

    Decimal makes `multipleOf: 0.01` exact against the Decimal money of a parsed message (a
    float divisor loses precision, and jsonschema cannot divide a Decimal by a float).
    """
    return json.loads(_schema_text(), parse_float=Decimal)


@cache
def _schema_text() -> str:
    return resources.files(__package__).joinpath("event_schema.json").read_text("utf-8")


@cache
def reference_validator() -> Draft202012Validator:
    """jsonschema's validator of the event schema: the reference that explains a rejection
    and that tests hold the fast path to. No format checker: every format is a `pattern`."""
    return Draft202012Validator(load_schema())


# --- The typed model -------------------------------------------------------------------------
# msgspec Structs decode and validate a message in C, several times faster than json.loads plus
# a Python validator. Their string and number constraints are read from the JSON Schema file,
# which stays the one statement of the contract (the Structs add its shape, and a test holds
# their verdict to jsonschema's on every one-edit mutation of an event). Money is the exception:
# msgspec has no constraints on Decimal, so `_money_is_valid` checks it exactly after decoding.


def _constrained(base: Any, *path: str) -> Any:
    """``base`` with the constraints of the schema node at ``path``: a `$defs` name, or a
    property of the event (one name) or of a definition (definition, property)."""
    schema = load_schema()
    if len(path) == 2:
        node = schema["$defs"][path[0]]["properties"][path[1]]
    else:
        node = schema["$defs"].get(path[0]) or schema["properties"][path[0]]
    keywords = {
        "pattern": "pattern",
        "minLength": "min_length",
        "maxLength": "max_length",
        "minimum": "ge",
        "maximum": "le",
    }
    meta = {name: node[keyword] for keyword, name in keywords.items() if keyword in node}
    return Annotated[base, msgspec.Meta(**meta)]


Id = _constrained(str, "id")
Timestamp = _constrained(str, "timestamp")
NullableTimestamp = _constrained(str, "nullable_timestamp") | None
Date = _constrained(str, "date")
Money = Decimal  # non-negative, at most two decimals: checked by `_money_is_valid`
ZipCode = _constrained(str, "customer", "zip_code_prefix")
City = _constrained(str, "customer", "city")
State = _constrained(str, "customer", "state")
ItemNumber = _constrained(int, "item", "order_item_id")
ProductCategory = _constrained(str, "item", "product_category") | None
PaymentNumber = _constrained(int, "payment", "payment_sequential")
Installments = _constrained(int, "payment", "payment_installments")
EventId = _constrained(str, "event_id")
Sequence = _constrained(int, "sequence")


class _Closed(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A JSON object with exactly these members (`additionalProperties: false`)."""


class Customer(_Closed):
    customer_id: Id
    customer_unique_id: Id
    zip_code_prefix: ZipCode
    city: City
    state: State


class Item(_Closed):
    order_item_id: ItemNumber
    product_id: Id
    seller_id: Id
    product_category: ProductCategory
    shipping_limit_at: Timestamp
    price: Money
    freight_value: Money


class Payment(_Closed):
    payment_sequential: PaymentNumber
    payment_type: PaymentType
    payment_installments: Installments
    payment_value: Money


class Order(_Closed):
    order_id: Id
    order_status: OrderStatus
    purchased_at: Timestamp
    approved_at: NullableTimestamp
    delivered_carrier_at: NullableTimestamp
    delivered_customer_at: NullableTimestamp
    estimated_delivery_date: Date
    customer: Customer
    items: list[Item]
    payments: list[Payment]


class Event(_Closed):
    schema_version: Literal[1]
    event_id: EventId
    event_type: EventType
    event_time: Timestamp
    sequence: Sequence
    order: Order


# What producers build and `encode_event` writes: an Event as a JSON-ready dict, money Decimal.
EventDocument = dict[str, Any]


def as_document(event: Event) -> EventDocument:
    """A parsed Event as the dict a producer would have built (money stays Decimal)."""
    return msgspec.to_builtins(event, builtin_types=(Decimal,))


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message is not a valid event; `reason` starts with one of REASON_KINDS."""

    reason: str

    @property
    def kind(self) -> str:
        return self.reason.split(":", 1)[0]


# --- Parsing ---------------------------------------------------------------------------------
# The fast path (msgspec) only answers valid/invalid. A message it refuses is decoded again the
# slow way, and jsonschema, the reference, words the reason: where and why, for dead letters.

_DECODER = msgspec.json.Decoder(Event)
_CENT = Decimal("0.01")
# A money member whose value is a JSON string: msgspec reads "12.50" as a Decimal, the schema
# wants a number. Quotes inside JSON strings are escaped, so this cannot match string content.
_MONEY_AS_STRING = re.compile(rb'"(?:price|freight_value|payment_value)"\s*:\s*"')


@cache
def _money_bounds() -> tuple[Decimal, Decimal]:
    money = load_schema()["$defs"]["money"]
    assert money["multipleOf"] == _CENT, "the money check assumes multipleOf 0.01"
    return money["minimum"], money["maximum"]


def _money_is_valid(order: Order, value: bytes) -> bool:
    """Every amount is a JSON number within the schema's bounds with at most two decimals
    (exactly: `multipleOf 0.01` on the decimal read from the text, never a float)."""
    if _MONEY_AS_STRING.search(value):  # first: a string may also hold "NaN"
        return False
    low, high = _money_bounds()
    amounts = [a for item in order.items for a in (item.price, item.freight_value)]
    amounts.extend(payment.payment_value for payment in order.payments)
    # Bounds before dividing: a huge exponent cannot be divided exactly.
    return all(low <= amount <= high and not amount % _CENT for amount in amounts)


def schema_violation(document: Any) -> str | None:
    """Where and why `document` (read with Decimal numbers) breaks the JSON Schema, or None
    when it conforms. Slow: only for messages the fast path refused."""
    errors: list[ValidationError] = []
    # jsonschema's multipleOf raises on numbers with more digits than the decimal context (the
    # schema lists `maximum` before it, so that error has been collected by then) and on float
    # money (numbers must be read as Decimal, as parse_event does).
    with contextlib.suppress(ArithmeticError, TypeError):
        errors.extend(reference_validator().iter_errors(document))
    error = best_match(errors)
    return None if error is None else f"{error.json_path}: {error.message}"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _rejection(kind: str, detail: str) -> Rejection:
    return Rejection(f"{kind}: {detail}"[:MAX_REASON_CHARS])


def parse_event(key: bytes | None, value: bytes | None) -> Event | Rejection:
    """The event in a Kafka message, or the first reason it breaks the contract.

    Checks, cheapest first: empty, size, the typed decoding (UTF-8, JSON, schema), money, then
    the message key and event_id against the order id. Money comes back as `Decimal`.
    """
    if not value:
        return _rejection(EMPTY, "message has no value")
    if len(value) > MAX_MESSAGE_BYTES:
        return _rejection(OVERSIZED, f"{len(value)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        event = _DECODER.decode(value)
    except (msgspec.MsgspecError, ValueError) as error:  # bad UTF-8 can be a UnicodeDecodeError
        return _explain(value, str(error))
    order = event.order
    if not _money_is_valid(order, value):
        return _explain(value, "money is not a number >= 0 with at most two decimals")
    if key is None:
        return _rejection(KEY_MISMATCH, f"message has no key, expected order_id {order.order_id}")
    if key != order.order_id.encode("ascii"):
        return _rejection(KEY_MISMATCH, f"key {key[:80]!r} != order_id {order.order_id}")
    expected_id = f"{order.order_id}:{event.sequence}"
    if event.event_id != expected_id:
        return _rejection(EVENT_ID_MISMATCH, f"event_id {event.event_id} != {expected_id}")
    return event


def _explain(value: bytes, fallback: str) -> Rejection:
    """Why the fast path refused a message, in the reference's words: the first broken layer
    (UTF-8, JSON, schema version, schema) and, for the schema, where and why."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        return _rejection(NOT_UTF8, str(error))
    try:
        document = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except ValueError as error:  # JSONDecodeError is a ValueError, and so is NaN/Infinity
        return _rejection(INVALID_JSON, str(error))
    if isinstance(document, dict) and "schema_version" in document:
        version = document["schema_version"]
        if type(version) is not int or version != SCHEMA_VERSION:
            return _rejection(
                UNKNOWN_SCHEMA_VERSION, f"{version!r} (this consumer reads {SCHEMA_VERSION})"
            )
    return _rejection(SCHEMA_VIOLATION, schema_violation(document) or f"$: {fallback}")


# Below 1e13 a decimal with at most two places has at most 15 significant digits, so the
# nearest binary double round-trips to exactly the same decimal through `repr`: the JSON text
# json.dumps writes for float(d) is d itself. This lets the C encoder do the work.
_MAX_EXACT_MONEY = Decimal("1e13")


def _money_as_exact_float(value: Any) -> float:
    if not isinstance(value, Decimal):
        raise TypeError(f"cannot encode {type(value).__name__} in an event")
    if not value.is_finite() or abs(value) >= _MAX_EXACT_MONEY:
        raise ValueError(f"money out of range: {value}")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"money with more than two decimals: {value}")
    return float(value)


def encode_event(event: EventDocument) -> bytes:
    """The event as compact UTF-8 JSON; Decimal money becomes a JSON number, digit for digit."""
    return json.dumps(
        event, separators=(",", ":"), ensure_ascii=False, default=_money_as_exact_float
    ).encode("utf-8")


def event_key(event: EventDocument) -> bytes:
    """The Kafka message key of an event: its order id, so one order stays in one partition."""
    return event["order"]["order_id"].encode("ascii")
