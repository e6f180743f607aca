"""The order event contract of topic `olist.orders`: typed shape, encoding, and the one parser
that turns raw Kafka bytes into an `Event` or a `Rejection` with a groupable reason."""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, Literal, TypedDict

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
REASON_KINDS = (
    EMPTY,
    OVERSIZED,
    NOT_UTF8,
    INVALID_JSON,
    UNKNOWN_SCHEMA_VERSION,
    SCHEMA_VIOLATION,
    KEY_MISMATCH,
    EVENT_ID_MISMATCH,
)


class Customer(TypedDict):
    customer_id: str
    customer_unique_id: str
    zip_code_prefix: str
    city: str
    state: str


class Item(TypedDict):
    order_item_id: int
    product_id: str
    seller_id: str
    product_category: str | None
    shipping_limit_at: str
    price: Decimal
    freight_value: Decimal


class Payment(TypedDict):
    payment_sequential: int
    payment_type: PaymentType
    payment_installments: int
    payment_value: Decimal


class Order(TypedDict):
    order_id: str
    order_status: OrderStatus
    purchased_at: str
    approved_at: str | None
    delivered_carrier_at: str | None
    delivered_customer_at: str | None
    estimated_delivery_date: str
    customer: Customer
    items: list[Item]
    payments: list[Payment]


class Event(TypedDict):
    schema_version: int
    event_id: str
    event_type: EventType
    event_time: str
    sequence: int
    order: Order


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message is not a valid event; `reason` starts with one of REASON_KINDS."""

    reason: str

    @property
    def kind(self) -> str:
        return self.reason.split(":", 1)[0]


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


# --- Fast path ------------------------------------------------------------------------------
# jsonschema walks a full event at about 2.5k events/s (5k with $refs inlined): too slow for a
# consumer that must keep up with a replay. So the same schema file is compiled once into
# plain closures that only answer valid/invalid (parse_event then does ~45k real events/s on
# one core, JSON decoding included), and jsonschema is asked only about an invalid message, to
# say precisely where and why. The compiler knows the keywords this schema uses and refuses
# any other, so the schema cannot silently outgrow it; a test holds it to jsonschema.

Check = Callable[[Any], bool]

_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description"})
_TYPE_CHECKS: dict[str, Check] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
    # What json.loads(parse_float=Decimal) yields for a number; bool is an int in Python.
    "number": lambda x: isinstance(x, int | float | Decimal) and not isinstance(x, bool),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
}
_is_number = _TYPE_CHECKS["number"]


def compile_schema(schema: dict[str, Any]) -> Check:
    """A fast predicate equivalent to Draft 2020-12 validation for the keywords used here."""
    defs = schema.get("$defs", {})
    compiled_defs: dict[str, Check] = {}

    def compile_node(node: dict[str, Any]) -> Check:
        leaf = _string_leaf_check(node) or _number_leaf_check(node)
        if leaf is not None:
            return leaf
        checks = [
            keyword_check(keyword, argument, node)
            for keyword, argument in node.items()
            if keyword not in _ANNOTATIONS and keyword != "additionalProperties"
        ]
        if "additionalProperties" in node:
            if node["additionalProperties"] is not False:
                raise ValueError("compile_schema: only additionalProperties: false is supported")
            if "properties" not in node:
                checks.append(lambda x: not isinstance(x, dict) or not x)
        return _all_of(checks)

    def keyword_check(keyword: str, argument: Any, node: dict[str, Any]) -> Check:
        if keyword == "$ref":
            name = argument.removeprefix("#/$defs/")
            if name not in compiled_defs:
                compiled_defs[name] = compile_node(defs[name])
            return compiled_defs[name]
        if keyword == "properties":
            subchecks = {name: compile_node(sub) for name, sub in argument.items()}
            return _properties_check(subchecks, closed=node.get("additionalProperties") is False)
        if keyword == "items":
            item_check = compile_node(argument)
            return lambda x: not isinstance(x, list) or all(map(item_check, x))
        if keyword in _SIMPLE_KEYWORDS:
            return _SIMPLE_KEYWORDS[keyword](argument)
        raise ValueError(f"compile_schema: unsupported keyword {keyword!r}")

    return compile_node(schema)


# Most of an event is strings (ids, timestamps) and money: one closure per such leaf instead of
# one per keyword halves the validation time.
_STRING_KEYWORDS = frozenset({"type", "pattern", "minLength", "maxLength"}) | _ANNOTATIONS
_NUMBER_KEYWORDS = frozenset({"type", "minimum", "maximum", "multipleOf"}) | _ANNOTATIONS


def _string_leaf_check(node: dict[str, Any]) -> Check | None:
    """One closure for a string (or nullable string) with only length and pattern rules."""
    if (
        node.get("type") not in ("string", ["string", "null"])
        or not node.keys() <= _STRING_KEYWORDS
    ):
        return None
    nullable = node["type"] != "string"
    shortest, longest = node.get("minLength", 0), node.get("maxLength", math.inf)
    search = re.compile(node.get("pattern", "")).search

    def check(x: Any) -> bool:
        if isinstance(x, str):
            return shortest <= len(x) <= longest and search(x) is not None
        return nullable and x is None

    return check


def _number_leaf_check(node: dict[str, Any]) -> Check | None:
    """One closure for a number or integer with only bounds and multipleOf rules."""
    if node.get("type") not in ("number", "integer") or not node.keys() <= _NUMBER_KEYWORDS:
        return None
    is_type = _TYPE_CHECKS[node["type"]]
    low, high = node.get("minimum", -math.inf), node.get("maximum", math.inf)
    multiple_of = _multiple_of_check(node["multipleOf"]) if "multipleOf" in node else None

    def check(x: Any) -> bool:
        if not is_type(x) or not low <= x <= high:
            return False
        return multiple_of is None or multiple_of(x)

    return check


def _all_of(checks: list[Check]) -> Check:
    if len(checks) == 1:
        return checks[0]

    def check(x: Any) -> bool:
        # A plain loop: measurably faster than all() over a generator on this hot path.
        for each in checks:  # noqa: SIM110
            if not each(x):
                return False
        return True

    return check


def _properties_check(subchecks: dict[str, Check], closed: bool) -> Check:
    def check(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        for name, value in x.items():
            subcheck = subchecks.get(name)
            if subcheck is None:
                if closed:
                    return False
            elif not subcheck(value):
                return False
        return True

    return check


def _type_check(argument: str | list[str]) -> Check:
    if isinstance(argument, str):
        return _TYPE_CHECKS[argument]
    alternatives = [_TYPE_CHECKS[name] for name in argument]
    return lambda x: any(alternative(x) for alternative in alternatives)


def _json_kind(value: Any) -> str:
    # JSON Schema equality: 1 and true differ, 1 and 1.0 are equal.
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    return type(value).__name__


def _const_check(argument: Any) -> Check:
    if isinstance(argument, dict | list):
        raise ValueError("compile_schema: only scalar const/enum values are supported")
    kind = _json_kind(argument)
    return lambda x: _json_kind(x) == kind and x == argument


def _enum_check(argument: list[Any]) -> Check:
    if all(isinstance(member, str) for member in argument):
        members = frozenset(argument)
        return lambda x: isinstance(x, str) and x in members
    alternatives = [_const_check(member) for member in argument]
    return lambda x: any(alternative(x) for alternative in alternatives)


def _pattern_check(argument: str) -> Check:
    search = re.compile(argument).search
    return lambda x: not isinstance(x, str) or search(x) is not None


def _multiple_of_check(argument: Any) -> Check:
    def check(x: Any) -> bool:
        if not _is_number(x):
            return True
        try:
            return not x % argument
        except (ArithmeticError, TypeError):  # too many digits to divide exactly, or a float
            return False

    return check


def _required_check(names: frozenset[str]) -> Check:
    return lambda x: not isinstance(x, dict) or x.keys() >= names


_SIMPLE_KEYWORDS: dict[str, Callable[[Any], Check]] = {
    "type": _type_check,
    "const": _const_check,
    "enum": _enum_check,
    "pattern": _pattern_check,
    "minLength": lambda n: lambda x: not isinstance(x, str) or len(x) >= n,
    "maxLength": lambda n: lambda x: not isinstance(x, str) or len(x) <= n,
    "minimum": lambda m: lambda x: not _is_number(x) or x >= m,
    "maximum": lambda m: lambda x: not _is_number(x) or x <= m,
    "multipleOf": _multiple_of_check,
    "required": lambda names: _required_check(frozenset(names)),
}


@cache
def _fast_validator() -> Check:
    return compile_schema(load_schema())


def schema_violation(document: Any) -> str | None:
    """Where and why `document` breaks the JSON Schema, or None when it conforms."""
    if _fast_validator()(document):
        return None
    errors: list[ValidationError] = []
    # jsonschema's multipleOf raises on numbers with more digits than the decimal context (the
    # schema lists `maximum` before it, so that error has been collected by then) and on float
    # money (numbers must be read as Decimal, as parse_event does).
    with contextlib.suppress(ArithmeticError, TypeError):
        errors.extend(reference_validator().iter_errors(document))
    error = best_match(errors)
    if error is None:
        return "$: a number is not a Decimal or is too large to check exactly"
    return f"{error.json_path}: {error.message}"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _rejection(kind: str, detail: str) -> Rejection:
    return Rejection(f"{kind}: {detail}"[:MAX_REASON_CHARS])


def parse_event(key: bytes | None, value: bytes | None) -> Event | Rejection:
    """The event in a Kafka message, or the first reason it breaks the contract.

    Checks, cheapest first: empty, size, UTF-8, JSON, schema version, JSON Schema, then the
    message key and event_id against the order id. Money comes back as `Decimal`.
    """
    if not value:
        return _rejection(EMPTY, "message has no value")
    if len(value) > MAX_MESSAGE_BYTES:
        return _rejection(OVERSIZED, f"{len(value)} bytes > {MAX_MESSAGE_BYTES}")
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
    violation = schema_violation(document)
    if violation is not None:
        return _rejection(SCHEMA_VIOLATION, violation)
    order_id = document["order"]["order_id"]
    if key is None:
        return _rejection(KEY_MISMATCH, f"message has no key, expected order_id {order_id}")
    if key != order_id.encode("ascii"):
        return _rejection(KEY_MISMATCH, f"key {key[:80]!r} != order_id {order_id}")
    expected_id = f"{order_id}:{document['sequence']}"
    if document["event_id"] != expected_id:
        return _rejection(EVENT_ID_MISMATCH, f"event_id {document['event_id']} != {expected_id}")
    return document


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


def encode_event(event: Event | dict[str, Any]) -> bytes:
    """The event as compact UTF-8 JSON; Decimal money becomes a JSON number, digit for digit."""
    return json.dumps(
        event, separators=(",", ":"), ensure_ascii=False, default=_money_as_exact_float
    ).encode("utf-8")


def event_key(event: Event | dict[str, Any]) -> bytes:
    """The Kafka message key of an event: its order id, so one order stays in one partition."""
    return event["order"]["order_id"].encode("ascii")
