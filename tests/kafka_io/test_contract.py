"""The event contract: parse_event's verdict and reason for every class of bad input, exact
money, and the typed (msgspec) fast path agreeing with jsonschema."""

from __future__ import annotations

import copy
import json
import typing
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from jsonschema import Draft202012Validator

from kafka_io import contract
from kafka_io.contract import (
    MAX_MESSAGE_BYTES,
    REASON_KINDS,
    SCHEMA_VERSION,
    Event,
    Rejection,
    as_document,
    encode_event,
    event_key,
    is_real_date,
    load_schema,
    nesting_depth,
    parse_event,
    reference_validator,
    schema_violation,
)

ORDER_ID = "e481f5cd8c7d4b9a8e0f1a2b3c4d5e6f"
KEY = ORDER_ID.encode()


def sample_event() -> dict[str, Any]:
    """DESIGN.md's example event, with full-length ids and Decimal money."""
    return {
        "schema_version": 1,
        "event_id": f"{ORDER_ID}:2",
        "event_type": "order_approved",
        "event_time": "2017-10-02T11:07:15",
        "sequence": 2,
        "order": {
            "order_id": ORDER_ID,
            "order_status": "approved",
            "purchased_at": "2017-10-02T10:56:33",
            "approved_at": "2017-10-02T11:07:15",
            "delivered_carrier_at": None,
            "delivered_customer_at": None,
            "estimated_delivery_date": "2017-10-18",
            "customer": {
                "customer_id": "9ef432eb6251297304e76186b10a928d",
                "customer_unique_id": "7c396fd4830fd04220f754e42b4e5bff",
                "zip_code_prefix": "03149",
                "city": "sao paulo",
                "state": "SP",
            },
            "items": [
                {
                    "order_item_id": 1,
                    "product_id": "87285b34884572647811a353c7ac498a",
                    "seller_id": "3504c0cb71d7fa48d967e0e4c94d59d9",
                    "product_category": "utilidades_domesticas",
                    "shipping_limit_at": "2017-10-06T11:07:15",
                    "price": Decimal("29.99"),
                    "freight_value": Decimal("8.72"),
                }
            ],
            "payments": [
                {
                    "payment_sequential": 1,
                    "payment_type": "credit_card",
                    "payment_installments": 1,
                    "payment_value": Decimal("38.71"),
                }
            ],
        },
    }


def mutated(path: str, value: Any) -> bytes:
    """The sample event with the field at dotted `path` set to `value` (or deleted)."""
    event = sample_event()
    *parents, last = path.split(".")
    target: Any = event
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return encode_event(event)


DELETE = object()


def sample_bytes_replacing(old: bytes, new: bytes) -> bytes:
    """The encoded sample with raw text swapped: for values encode_event refuses to write."""
    value = encode_event(sample_event())
    assert old in value
    return value.replace(old, new)


# --- Valid messages -------------------------------------------------------------------------


def test_valid_event_round_trips_with_decimal_money() -> None:
    event = sample_event()
    parsed = parse_event(event_key(event), encode_event(event))
    assert isinstance(parsed, Event)
    assert as_document(parsed) == event
    item = parsed.order.items[0]
    assert type(item.price) is Decimal and item.price == Decimal("29.99")
    assert parsed.order.customer.zip_code_prefix == "03149"  # leading zero kept


def test_encoding_is_compact_utf8_json_with_money_as_numbers() -> None:
    value = encode_event(sample_event())
    assert b'"price":29.99,"freight_value":8.72' in value
    assert b'"payment_value":38.71' in value
    assert b": " not in value and b", " not in value
    assert value.decode("utf-8")


def test_money_is_exact_where_floats_are_not() -> None:
    # 0.1 + 0.2 != 0.3 in binary floats; the contract must keep decimal arithmetic exact.
    event = sample_event()
    item = event["order"]["items"][0]
    item["price"], item["freight_value"] = Decimal("0.1"), Decimal("0.2")
    event["order"]["payments"][0]["payment_value"] = Decimal("0.30")
    parsed = parse_event(KEY, encode_event(event))
    assert isinstance(parsed, Event)
    parsed_item = parsed.order.items[0]
    assert parsed_item.price + parsed_item.freight_value == Decimal("0.3")
    assert parsed.order.payments[0].payment_value == Decimal("0.3")


@pytest.mark.parametrize(
    "amount", ["0.00", "0.01", "0.07", "1.10", "13664.08", "1234567.89", "9999999.99"]
)
def test_money_survives_encoding_digit_for_digit(amount: str) -> None:
    event = sample_event()
    event["order"]["items"][0]["price"] = Decimal(amount)
    value = encode_event(event)
    number_text = value.split(b'"price":')[1].split(b",")[0].decode()
    assert Decimal(number_text) == Decimal(amount)
    parsed = parse_event(KEY, value)
    assert isinstance(parsed, Event)
    assert parsed.order.items[0].price == Decimal(amount)


@pytest.mark.parametrize("amount", ["1.005", "0.001", "1e13", "NaN"])
def test_encoding_refuses_money_it_cannot_write_exactly(amount: str) -> None:
    event = sample_event()
    event["order"]["items"][0]["price"] = Decimal(amount)
    with pytest.raises(ValueError):
        encode_event(event)


def test_integer_money_and_nullable_fields_are_valid() -> None:
    value = mutated("order.items.0.price", 30)
    assert isinstance(parse_event(KEY, value), Event)
    value = mutated("order.items.0.product_category", None)
    assert isinstance(parse_event(KEY, value), Event)
    # A trailing zero is still a multiple of 0.01; whitespace between tokens is JSON too.
    assert isinstance(parse_event(KEY, sample_bytes_replacing(b"38.71", b"38.710")), Event)
    assert isinstance(
        parse_event(KEY, sample_bytes_replacing(b'"sequence":2', b'"sequence" : 2')), Event
    )


# --- Rejections -----------------------------------------------------------------------------

BAD_MESSAGES: dict[str, tuple[bytes | None, bytes | None, str, str]] = {
    # name: (key, value, reason kind, text the reason must contain)
    "no value": (KEY, None, "empty", "no value"),
    "empty value": (KEY, b"", "empty", "no value"),
    "oversized": (KEY, b"\xff" * (MAX_MESSAGE_BYTES + 1), "oversized", "1000001 bytes"),
    "not utf-8": (KEY, b'{"schema_version": 1, "x": "\xff"}', "not_utf8", "can't decode"),
    "not utf-8 at the start": (KEY, b"\xff" + encode_event(sample_event()), "not_utf8", "0xff"),
    "invalid json": (KEY, b'{"schema_version": 1,', "invalid_json", "line 1"),
    "NaN is not json": (KEY, b'{"price": NaN}', "invalid_json", "NaN"),
    "unknown schema version": (
        KEY,
        mutated("schema_version", 2),
        "unknown_schema_version",
        "2 (this consumer reads 1)",
    ),
    "schema version as text": (
        KEY,
        mutated("schema_version", "1"),
        "unknown_schema_version",
        "'1'",
    ),
    "missing schema version": (
        KEY,
        mutated("schema_version", DELETE),
        "schema_violation",
        "'schema_version' is a required property",
    ),
    "missing field": (
        KEY,
        mutated("order.customer", DELETE),
        "schema_violation",
        "$.order: 'customer' is a required property",
    ),
    "wrongly typed field": (
        KEY,
        mutated("sequence", "2"),
        "schema_violation",
        "$.sequence: '2' is not of type 'integer'",
    ),
    "boolean as integer": (
        KEY,
        mutated("order.items.0.order_item_id", True),
        "schema_violation",
        "$.order.items[0].order_item_id",
    ),
    "unknown event type": (
        KEY,
        mutated("event_type", "order_teleported"),
        "schema_violation",
        "$.event_type: 'order_teleported' is not one of",
    ),
    "negative money": (
        KEY,
        mutated("order.items.0.price", Decimal("-1.00")),
        "schema_violation",
        "$.order.items[0].price: Decimal('-1.0') is less than the minimum of 0",
    ),
    "three-decimal money": (
        KEY,
        sample_bytes_replacing(b"38.71", b"38.715"),
        "schema_violation",
        "$.order.payments[0].payment_value: Decimal('38.715') is not a multiple of 0.01",
    ),
    "huge money": (
        KEY,
        sample_bytes_replacing(b'"freight_value":8.72', b'"freight_value":1e400'),
        "schema_violation",
        "$.order.items[0].freight_value: Decimal('1E+400') is greater than the maximum",
    ),
    "extra field": (
        KEY,
        mutated("order.coupon", "XMAS"),
        "schema_violation",
        "$.order: Additional properties are not allowed ('coupon' was unexpected)",
    ),
    "timestamp with offset": (
        KEY,
        mutated("event_time", "2017-10-02T11:07:15Z"),
        "schema_violation",
        "$.event_time",
    ),
    "timestamp with a trailing newline": (
        KEY,
        mutated("order.approved_at", "2017-10-02T11:07:15\n"),
        "schema_violation",
        "$.order.approved_at",
    ),
    "null purchase time": (
        KEY,
        mutated("order.purchased_at", None),
        "schema_violation",
        "$.order.purchased_at: None is not of type 'string'",
    ),
    "unknown status": (
        KEY,
        mutated("order.order_status", "lost"),
        "schema_violation",
        "$.order.order_status",
    ),
    "zip code as a number": (
        KEY,
        mutated("order.customer.zip_code_prefix", 3149),
        "schema_violation",
        "$.order.customer.zip_code_prefix",
    ),
    "unknown payment type": (
        KEY,
        mutated("order.payments.0.payment_type", "pix"),
        "schema_violation",
        "$.order.payments[0].payment_type",
    ),
    "not an object": (KEY, b"[1, 2]", "schema_violation", "$: [1, 2] is not of type 'object'"),
    "money as a string": (
        KEY,
        sample_bytes_replacing(b'"price":29.99', b'"price" : "29.99"'),
        "schema_violation",
        "$.order.items[0].price: '29.99' is not of type 'number'",
    ),
    "NUL character (PostgreSQL's jsonb cannot hold it)": (
        KEY,
        mutated("order.customer.city", "sao\x00paulo"),
        "schema_violation",
        "$.order.customer.city: 'sao\\x00paulo' does not match",
    ),
    "sequence beyond PostgreSQL's integer": (
        KEY,
        sample_bytes_replacing(b'"sequence":2', b'"sequence":2147483648'),
        "schema_violation",
        "$.sequence: 2147483648 is greater than the maximum of 2147483647",
    ),
    "key is another order": (
        b"f" * 32,
        encode_event(sample_event()),
        "key_mismatch",
        f"b'ffffffffffffffffffffffffffffffff' != order_id {ORDER_ID}",
    ),
    "missing key": (None, encode_event(sample_event()), "key_mismatch", "message has no key"),
    "event id of another sequence": (
        KEY,
        mutated("sequence", 3),
        "event_id_mismatch",
        f"event_id {ORDER_ID}:2 != {ORDER_ID}:3",
    ),
    # What the pattern allows but PostgreSQL or the models could not hold (issue #10).
    "a day the calendar does not have": (
        KEY,
        mutated("order.purchased_at", "2023-02-30T10:00:00"),
        "schema_violation",
        "$.order.purchased_at: '2023-02-30T10:00:00' is not a 'local-date-time'",
    ),
    "February 29 of a common year": (
        KEY,
        mutated("order.estimated_delivery_date", "2017-02-29"),
        "schema_violation",
        "$.order.estimated_delivery_date: '2017-02-29' is not a 'date'",
    ),
    "1900 is not a leap year": (
        KEY,
        mutated("order.items.0.shipping_limit_at", "1900-02-29T00:00:00"),
        "schema_violation",
        "$.order.items[0].shipping_limit_at: '1900-02-29T00:00:00' is not a 'local-date-time'",
    ),
    "April 31 in a null-able stage": (
        KEY,
        mutated("order.approved_at", "2017-04-31T11:07:15"),
        "schema_violation",
        "$.order.approved_at: '2017-04-31T11:07:15' is not a 'local-date-time'",
    ),
    "year 0": (
        KEY,
        mutated("event_time", "0000-01-01T00:00:00"),
        "schema_violation",
        "$.event_time",
    ),
    "year beyond 2199 (delivery_days would overflow)": (
        KEY,
        mutated("order.delivered_customer_at", "9999-12-31T23:59:59"),
        "schema_violation",
        "$.order.delivered_customer_at",
    ),
    "money above the bound that keeps sums in numeric(14,2)": (
        KEY,
        mutated("order.payments.0.payment_value", Decimal("10000000.00")),
        "schema_violation",
        "$.order.payments[0].payment_value: Decimal('10000000.0') is greater than the maximum",
    ),
    "money 1e999999": (
        KEY,
        sample_bytes_replacing(b'"price":29.99', b'"price":1e999999'),
        "schema_violation",
        "$.order.items[0].price: Decimal('1E+999999') is greater than the maximum",
    ),
    "too many items": (
        KEY,
        mutated("order.items", sample_event()["order"]["items"] * 1001),
        "schema_violation",
        "$.order.items: [",
    ),
    "too many payments": (
        KEY,
        mutated("order.payments", sample_event()["order"]["payments"] * 1001),
        "schema_violation",
        "is too long",
    ),
    "deeply nested arrays": (KEY, b"[" * 100_000 + b"]" * 100_000, "too_deep", "100000 deep"),
    "deeply nested objects, unterminated": (KEY, b'{"a":' * 50_000, "too_deep", "50000 deep"),
    "deep nesting inside an event": (
        KEY,
        sample_bytes_replacing(b'"sao paulo"', b"[" * 2000 + b"]" * 2000),
        "too_deep",
        "2003 deep",  # event > order > customer > 2,000 arrays
    ),
    "brackets inside strings are not nesting": (
        KEY,
        mutated("order.customer.city", "[" * 5000),
        "schema_violation",
        "$.order.customer.city: '[[[[",
    ),
    "lone high surrogate": (
        KEY,
        sample_bytes_replacing(b'"sao paulo"', b'"sao \\ud800 paulo"'),
        "lone_surrogate",
        "'sao \\ud800 paulo'",
    ),
    "lone low surrogate in a category": (
        KEY,
        sample_bytes_replacing(b'"utilidades_domesticas"', b'"\\udc00"'),
        "lone_surrogate",
        "\\udc00",
    ),
    "lone surrogate in a member name": (
        KEY,
        sample_bytes_replacing(b'"sequence":2', b'"sequence":2,"\\ud83d":1'),
        "lone_surrogate",
        "\\ud83d",
    ),
    "a surrogate written as UTF-8 bytes": (
        KEY,
        sample_bytes_replacing(b"sao paulo", "sao \udc80".encode("utf-8", "surrogatepass")),
        "not_utf8",
        "can't decode",
    ),
    "repeated member, last value valid": (
        KEY,
        sample_bytes_replacing(b'"sequence":2', b'"sequence":3,"sequence":2'),
        "duplicate_key",
        "'sequence' appears more than once",
    ),
    "repeated member, same value": (
        KEY,
        sample_bytes_replacing(b'"state":"SP"', b'"state":"SP","state":"SP"'),
        "duplicate_key",
        "'state'",
    ),
    "repeated member with escapes": (
        KEY,
        sample_bytes_replacing(b'"state":"SP"', b'"state":"SP","st\\u0061te":"SP"'),
        "duplicate_key",
        "'state'",
    ),
    "Infinity is not json": (
        KEY,
        sample_bytes_replacing(b"29.99", b"Infinity"),
        "invalid_json",
        "Infinity is not valid JSON",
    ),
    "-Infinity is not json": (
        KEY,
        sample_bytes_replacing(b"29.99", b"-Infinity"),
        "invalid_json",
        "-Infinity",
    ),
    "integer of 5,000 digits": (
        KEY,
        sample_bytes_replacing(b'"sequence":2', b'"sequence":1' + b"0" * 4999),
        "number_out_of_range",
        "an integer of 5000 digits",
    ),
    "exponent beyond Decimal": (
        KEY,
        sample_bytes_replacing(b"8.72", b"1e9999999999999999999"),
        "number_out_of_range",
        "1e9999999999999999999",
    ),
    "UTF-16": (KEY, encode_event(sample_event()).decode().encode("utf-16"), "not_utf8", "0xff"),
    "UTF-8 byte order mark": (
        KEY,
        b"\xef\xbb\xbf" + encode_event(sample_event()),
        "invalid_json",
        "BOM",
    ),
    "a JSON string at the top": (KEY, b'"event"', "schema_violation", "is not of type 'object'"),
    "null at the top": (KEY, b"null", "schema_violation", "None is not of type 'object'"),
    "key of arbitrary bytes": (
        b"\x00\xff\xfe",
        encode_event(sample_event()),
        "key_mismatch",
        "b'\\x00\\xff\\xfe' != order_id",
    ),
}


@pytest.mark.parametrize("name", list(BAD_MESSAGES))
def test_bad_message_is_rejected_with_a_precise_grouped_reason(name: str) -> None:
    key, value, kind, detail = BAD_MESSAGES[name]
    result = parse_event(key, value)
    assert isinstance(result, Rejection), result
    assert result.kind == kind
    assert result.reason.startswith(f"{kind}: ")
    assert detail in result.reason
    assert kind in REASON_KINDS


def test_reasons_are_storable_text_whatever_the_message() -> None:
    # A NUL or a lone surrogate in the reason would make the dead-letter COPY itself fail.
    for value in (
        mutated("order.customer.city", "sao\x00paulo"),
        sample_bytes_replacing(b'"sequence":2', b'"sequence":2,"\\ud800\\u0000":1'),
    ):
        result = parse_event(KEY, value)
        assert isinstance(result, Rejection)
        assert "\x00" not in result.reason
        assert result.reason.encode("utf-8")


def test_an_unforeseen_failure_is_a_rejection_not_an_exception(monkeypatch) -> None:
    def broken(*_: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(contract, "_parse", broken)
    result = parse_event(KEY, encode_event(sample_event()))
    assert result == Rejection("parser_error: KeyError: 'bug'")
    assert result.kind in REASON_KINDS


BOUNDARY_EDITS: dict[str, tuple[str, Any]] = {
    "leap day": ("order.purchased_at", "2016-02-29T23:59:59"),
    "2000 is a leap year": ("order.estimated_delivery_date", "2000-02-29"),
    "first second of 1900": ("event_time", "1900-01-01T00:00:00"),
    "last second of 2199": ("order.delivered_customer_at", "2199-12-31T23:59:59"),
    "day 31": ("order.items.0.shipping_limit_at", "2017-12-31T00:00:00"),
    "largest amount": ("order.items.0.price", Decimal("9999999.99")),
    "largest sequence": ("sequence", 2147483647),
    "no items": ("order.items", []),
    "no payments": ("order.payments", []),
    "1,000 items": ("order.items", sample_event()["order"]["items"] * 1000),
    "unicode city": ("order.customer.city", "são paulo ☃ \U0001f600"),
    "quotes and backslashes in a city": ("order.customer.city", 'a "b" \\ c:'),
}


@pytest.mark.parametrize("name", list(BOUNDARY_EDITS))
def test_boundary_values_are_accepted(name: str) -> None:
    path, value = BOUNDARY_EDITS[name]
    event = sample_event()
    if path == "sequence":
        event["event_id"] = f"{ORDER_ID}:{value}"
    message = mutated(path, value) if path != "sequence" else encode_event({**event, path: value})
    parsed = parse_event(KEY, message)
    assert isinstance(parsed, Event), parsed


def test_escaped_text_is_decided_by_the_reference_and_accepted() -> None:
    # A surrogate pair (escaped emoji) and escaped member names are valid JSON for one value.
    value = sample_bytes_replacing(b'"sao paulo"', b'"sao \\ud83d\\ude00"')
    value = value.replace(b'"state":', b'"st\\u0061te":')
    parsed = parse_event(KEY, value)
    assert isinstance(parsed, Event), parsed
    assert parsed.order.customer.city == "sao \U0001f600"


@pytest.mark.parametrize(
    ("text", "real"),
    [
        ("2017-02-28T00:00:00", True),
        ("2017-02-29T00:00:00", False),
        ("2016-02-29", True),
        ("1900-02-29", False),
        ("2000-02-29", True),
        ("2017-04-31", False),
        ("2017-05-31T23:59:59", True),
        ("2017-02-30", False),
    ],
)
def test_is_real_date(text: str, real: bool) -> None:
    assert is_real_date(text) is real


@pytest.mark.parametrize(
    ("value", "depth"),
    [
        (b"1", 0),
        (b"{}", 1),
        (b'{"a": [[{}]]}', 4),
        (b"[" * 40 + b"]" * 40, 40),
        (b'["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]', 1),
        (b'["\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]', 1),
        (b"[" * 50, 50),
    ],
)
def test_nesting_depth_ignores_strings(value: bytes, depth: int) -> None:
    assert nesting_depth(value) == depth


def test_size_is_checked_before_decoding() -> None:
    # Over the limit and also not UTF-8 and not JSON: the cheap check answers first.
    result = parse_event(KEY, b"\xff" * (MAX_MESSAGE_BYTES + 1))
    assert isinstance(result, Rejection) and result.kind == "oversized"
    at_limit = parse_event(KEY, b" " * MAX_MESSAGE_BYTES)
    assert isinstance(at_limit, Rejection) and at_limit.kind == "invalid_json"


def test_reason_length_is_bounded() -> None:
    event = sample_event()
    event["order"]["customer"]["city"] = "x" * 5000
    result = parse_event(KEY, encode_event(event))
    assert isinstance(result, Rejection) and result.kind == "schema_violation"
    assert len(result.reason) <= 500


def test_version_is_named_in_the_contract() -> None:
    assert SCHEMA_VERSION == 1
    assert load_schema()["properties"]["schema_version"] == {"const": 1}


# --- The typed fast path against jsonschema ------------------------------------------------


def test_schema_file_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(load_schema())


# Values each leaf of the sample is replaced by: every JSON type, edge numbers and strings.
CANDIDATES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**70,
    Decimal("0.5"),
    Decimal("1.0"),
    Decimal("-0.01"),
    Decimal("1.005"),
    Decimal("1E+400"),
    "",
    "x",
    "SP",
    "sp",
    "03149",
    "2017-10-02T11:07:15",
    "2017-13-02T11:07:15",
    "2017-02-29T11:07:15",
    "2016-02-29T23:59:59",
    "0000-01-01T00:00:00",
    "2017-10-02",
    "2017-06-31",
    "2000-02-29",
    Decimal("9999999.99"),
    Decimal("10000000.00"),
    ORDER_ID,
    ORDER_ID.upper(),
    "order_shipped",
    "credit_card",
    "delivered",
    [],
    {},
    [{}],
]


def value_paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every value inside the document, objects and arrays included."""
    if isinstance(node, dict):
        children: Any = node.items()
    elif isinstance(node, list):
        children = enumerate(node)
    else:
        return
    for key, child in children:
        yield (*path, key)
        yield from value_paths(child, (*path, key))


def edited(document: Any, path: tuple[Any, ...], edit: Any) -> Any:
    """A deep copy of `document` with `edit(parent, key)` applied at `path`."""
    copied = copy.deepcopy(document)
    parent = copied
    for part in path[:-1]:
        parent = parent[part]
    edit(parent, path[-1])
    return copied


def documents_around_the_sample() -> Iterator[Any]:
    """The sample, and every document one edit away: each value replaced by each candidate,
    each object member deleted, each object given an unexpected member."""
    base = sample_event()
    yield base
    for path in value_paths(base):
        for value in CANDIDATES:
            yield edited(base, path, lambda parent, key, v=value: parent.__setitem__(key, v))
        if isinstance(path[-1], str):  # a member of an object
            yield edited(base, path, lambda parent, key: parent.pop(key))
            yield edited(base, path, lambda parent, _: parent.__setitem__("unexpected", 1))


# Writes Decimal as its own digits and ints of any size: values encode_event refuses to write.
_ANY_JSON = msgspec.json.Encoder(decimal_format="number")


def test_fast_path_agrees_with_jsonschema_on_every_single_mutation() -> None:
    reference = reference_validator()
    checked = disagreements = 0
    for document in documents_around_the_sample():
        try:
            expected = reference.is_valid(document)
        except ArithmeticError:  # jsonschema cannot divide 1E+400 by 0.01 exactly
            expected = False
        # Stricter than `const: 1` on purpose: 1.0 is not the version, it is a wrong producer.
        if type(document.get("schema_version")) is not int:
            expected = False
        value = _ANY_JSON.encode(document)
        parsed = parse_event(KEY, value)
        # Key and event_id checks come after the schema: count only schema verdicts here.
        fast = isinstance(parsed, Event) or parsed.kind in ("key_mismatch", "event_id_mismatch")
        if fast != expected:
            disagreements += 1
            print("disagree:", value[:300])
        checked += 1
    assert checked > 1000
    assert disagreements == 0


def test_typed_model_has_the_fields_of_the_schema_file() -> None:
    """The Structs and the JSON Schema name the same members, all required, none extra."""
    schema = load_schema()
    objects = {
        "Event": schema,
        **{name.capitalize(): node for name, node in schema["$defs"].items()},
    }
    for struct in (Event, *(type_ for type_ in _nested_structs(Event))):
        node = objects[struct.__name__]
        assert set(struct.__struct_fields__) == set(node["properties"]) == set(node["required"])
        assert node["additionalProperties"] is False
        assert struct.__struct_config__.forbid_unknown_fields
        # Enumerations: the Literal types list exactly the schema's values.
        for name, hint in typing.get_type_hints(struct).items():
            if typing.get_origin(hint) is typing.Literal and "enum" in node["properties"][name]:
                assert set(typing.get_args(hint)) == set(node["properties"][name]["enum"])


def _nested_structs(struct: type) -> Iterator[type]:
    for hint in typing.get_type_hints(struct).values():
        for candidate in (hint, *typing.get_args(hint)):
            if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
                yield candidate
                yield from _nested_structs(candidate)


def test_schema_violation_names_the_path_or_none() -> None:
    event = json.loads(encode_event(sample_event()), parse_float=Decimal)
    assert schema_violation(event) is None
    event["order"]["items"][0]["price"] = Decimal("-5")
    assert schema_violation(event) == (
        "$.order.items[0].price: Decimal('-5') is less than the minimum of 0"
    )


@pytest.mark.parametrize(
    "edit",
    [
        lambda o: None,
        lambda o: o.update(items=[], payments=[]),
        lambda o: o.update(items=o["items"] * 3, payments=o["payments"] * 2),
        lambda o: o["items"][0].update(product_category=None),
        lambda o: o.update(delivered_carrier_at="2017-10-03T00:00:00"),
    ],
)
def test_fast_path_proves_plain_events_valid_and_counts_a_repeated_member(edit) -> None:
    # The quote count stands for "no member twice": it must match every plain valid event
    # exactly (else the fast path is never used) and miss as soon as a member is repeated.
    event = sample_event()
    edit(event["order"])
    value = encode_event(event)
    decoded = msgspec.json.decode(value, type=Event)
    assert contract._is_plainly_valid(decoded, value)
    repeated = value.replace(b'"state":', b'"state":"SP","state":', 1)
    assert not contract._is_plainly_valid(msgspec.json.decode(repeated, type=Event), repeated)
