"""Property-based tests of the event contract (hypothesis, derandomized so CI never flakes):
generated valid events with boundary values are accepted, stored by `olist ingest` and built by
dbt; arbitrary bytes, arbitrary JSON and mutated events never make the parser raise, and its
verdict is the reference's (json.loads + jsonschema with the event schema and its formats)."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from decimal import Decimal
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kafka_io.contract import (
    MAX_MESSAGE_BYTES,
    Event,
    EventType,
    OrderStatus,
    PaymentType,
    Rejection,
    as_document,
    encode_event,
    event_key,
    parse_event,
    reference_validator,
)
from olist_dev.stack.common import unique_name
from tests.dbt.conftest import dbt_env  # noqa: F401 (the dbt sandbox fixture)
from tests.kafka_io.ingest_helpers import fetch, produce_events, run_ingest
from tests.kafka_io.test_contract import edited, value_paths

# Fixed examples, no deadline (the machine is shared), a few hundred examples per property.
PROPERTIES = hypothesis_settings(
    derandomize=True,
    deadline=None,
    max_examples=300,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEWER = hypothesis_settings(PROPERTIES, max_examples=60)

HEX = "0123456789abcdef"
MAX_MONEY = Decimal("9999999.99")
INT_MAX = 2**31 - 1
ids = st.text(HEX, min_size=32, max_size=32)
moments = st.one_of(
    st.sampled_from(
        [
            datetime(1900, 1, 1),
            datetime(2199, 12, 31, 23, 59, 59),
            datetime(2016, 2, 29, 23, 59, 59),
            datetime(2000, 2, 29),
        ]
    ),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2199, 12, 31, 23, 59, 59)),
)
timestamps = moments.map(lambda moment: moment.isoformat(timespec="seconds"))
dates = moments.map(lambda moment: moment.date().isoformat())
money = st.one_of(
    st.sampled_from([Decimal("0.00"), Decimal("0.01"), MAX_MONEY]),
    st.decimals(min_value=0, max_value=MAX_MONEY, places=2),
)
counts = st.one_of(st.sampled_from([1, INT_MAX]), st.integers(1, INT_MAX))
# Any text PostgreSQL's jsonb holds: no NUL, no lone surrogate (category Cs).
free_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=100,
)

items = st.fixed_dictionaries(
    {
        "order_item_id": counts,
        "product_id": ids,
        "seller_id": ids,
        "product_category": st.none() | free_text,
        "shipping_limit_at": timestamps,
        "price": money,
        "freight_value": money,
    }
)
payments = st.fixed_dictionaries(
    {
        "payment_sequential": counts,
        "payment_type": st.sampled_from(get_args(PaymentType)),
        "payment_installments": st.integers(0, INT_MAX),
        "payment_value": money,
    }
)
STATUSES = get_args(OrderStatus)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """A schema-valid event, boundary values likely (empty lists, max money and counts)."""
    order_id, sequence = draw(ids), draw(counts)
    return {
        "schema_version": 1,
        "event_id": f"{order_id}:{sequence}",
        "event_type": draw(st.sampled_from(get_args(EventType))),
        "event_time": draw(timestamps),
        "sequence": sequence,
        "order": {
            "order_id": order_id,
            "order_status": draw(st.sampled_from(STATUSES)),
            "purchased_at": draw(timestamps),
            "approved_at": draw(st.none() | timestamps),
            "delivered_carrier_at": draw(st.none() | timestamps),
            "delivered_customer_at": draw(st.none() | timestamps),
            "estimated_delivery_date": draw(dates),
            "customer": {
                "customer_id": draw(ids),
                "customer_unique_id": draw(ids),
                "zip_code_prefix": draw(st.text("0123456789", min_size=5, max_size=5)),
                "city": draw(free_text),
                "state": draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2)),
            },
            "items": draw(st.lists(items, max_size=4)),
            "payments": draw(st.lists(payments, max_size=4)),
        },
    }


def largest_order() -> dict[str, Any]:
    """The largest sums one message may carry: 1,000 items and 1,000 payments at the maximum."""
    order_id = "f" * 32
    item = dict.fromkeys(("price", "freight_value"), MAX_MONEY)
    return {
        "schema_version": 1,
        "event_id": f"{order_id}:1",
        "event_type": "order_created",
        "event_time": "2199-12-31T23:59:59",
        "sequence": 1,
        "order": {
            "order_id": order_id,
            "order_status": "delivered",
            "purchased_at": "1900-01-01T00:00:00",
            "approved_at": None,
            "delivered_carrier_at": None,
            "delivered_customer_at": "2199-12-31T23:59:59",
            "estimated_delivery_date": "2199-12-31",
            "customer": {
                "customer_id": "e" * 32,
                "customer_unique_id": "d" * 32,
                "zip_code_prefix": "00000",
                "city": "são paulo",
                "state": "SP",
            },
            "items": [
                {
                    "order_item_id": n,
                    "product_id": "c" * 32,
                    "seller_id": "b" * 32,
                    "product_category": None,
                    "shipping_limit_at": "2016-02-29T00:00:00",
                    **item,
                }
                for n in range(1, 1001)
            ],
            "payments": [
                {
                    "payment_sequential": n,
                    "payment_type": "voucher",
                    "payment_installments": INT_MAX,
                    "payment_value": MAX_MONEY,
                }
                for n in range(1, 1001)
            ],
        },
    }


# --- The reference verdict ------------------------------------------------------------------


class _Repeated(Exception):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({name for name, _ in pairs}) != len(pairs):
        raise _Repeated
    return dict(pairs)


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def reference_accepts(key: bytes | None, value: bytes) -> bool:
    """The contract stated independently of the parser: UTF-8 strict JSON of at most 1 MB
    without repeated members, valid for jsonschema (with the schema's formats), an integer
    schema_version, and the key and event_id of its order."""
    if not value or len(value) > MAX_MESSAGE_BYTES:
        return False
    try:
        document = json.loads(
            value.decode("utf-8"),
            parse_float=Decimal,
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique,
        )
        if type(document) is not dict or type(document.get("schema_version")) is not int:
            return False
        if not reference_validator().is_valid(document):
            return False
    except (ValueError, RecursionError, ArithmeticError, _Repeated):
        return False  # ArithmeticError: multipleOf on a number far beyond the maximum
    order_id = document["order"]["order_id"]
    return key == order_id.encode() and document["event_id"] == f"{order_id}:{document['sequence']}"


def assert_verdict_is_the_reference(key: bytes | None, value: bytes) -> None:
    result = parse_event(key, value)  # must not raise, whatever the bytes
    assert isinstance(result, Event | Rejection)
    event(result.kind if isinstance(result, Rejection) else "accepted")
    assert isinstance(result, Event) == reference_accepts(key, value), (result, value[:300])
    if isinstance(result, Rejection):
        assert result.reason.encode("utf-8")  # storable text: no lone surrogate
        assert "\x00" not in result.reason and len(result.reason) <= 500


# --- (b) never raises, same verdict as the reference ----------------------------------------

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),  # surrogates and NUL included
    st.sampled_from(["2023-02-30T00:00:00", "0000-01-01", "\ud800", "\udfff", "1e999999"]),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=30,
)
keys = st.none() | st.binary(max_size=40) | ids.map(str.encode)


def as_json(document: Any, ascii_only: bool) -> bytes:
    """Any document as JSON text: NaN as NaN, Decimal money digit for digit (repr of the float
    is exact below 1e13 with two places), surrogates escaped or, unescaped, as invalid UTF-8."""
    text = json.dumps(document, ensure_ascii=ascii_only, allow_nan=True, default=float)
    return text.encode("utf-8", "surrogatepass")


@PROPERTIES
@given(key=keys, value=st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise_and_match_the_reference(key, value) -> None:
    assert_verdict_is_the_reference(key, value)


@PROPERTIES
@given(key=keys, document=json_values, ascii_only=st.booleans())
def test_arbitrary_json_never_raises_and_matches_the_reference(key, document, ascii_only) -> None:
    assert_verdict_is_the_reference(key, as_json(document, ascii_only))


@FEWER
@given(depth=st.integers(1, 200_000), opener=st.sampled_from([b"[", b'{"a":']))
def test_any_nesting_depth_never_raises(depth, opener) -> None:
    closer = b"]" if opener == b"[" else b"}"
    assert_verdict_is_the_reference(None, opener * depth + b"1" + closer * depth)
    assert_verdict_is_the_reference(None, opener * depth)  # unterminated


def value_at(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        if isinstance(document, list) and part >= len(document):
            return None
        document = document[part]
    return document


def mutations(draw: st.DrawFn, document: dict[str, Any]) -> bytes:
    """The event with one edit: a value replaced by any JSON, a member deleted or added, or a
    member repeated in the text."""
    paths = list(value_paths(document))
    path = draw(st.sampled_from(paths))
    edit = draw(st.sampled_from(["replace", "delete", "add", "repeat", "valid"]))
    ascii_only = draw(st.booleans())
    if edit in ("replace", "valid"):
        # "valid": the value another valid event has there (often still valid, with escapes
        # when ascii_only, so the reference path decides), else any JSON value.
        value = draw(json_values) if edit == "replace" else value_at(draw(valid_events()), path)
        document = edited(document, path, lambda parent, key: parent.__setitem__(key, value))
    elif edit == "delete" and isinstance(path[-1], str):
        document = edited(document, path, lambda parent, key: parent.pop(key))
    elif edit == "add":  # a member the schema does not name, in the parent object
        name, value = draw(st.text(max_size=5)), draw(json_leaves)
        document = copy.deepcopy(document)
        parent: Any = document
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict):
            parent[name] = value
    text = as_json(document, ascii_only)
    if edit == "repeat":  # the first member again, right after the opening brace
        name = text[1 : text.index(b":", 1)]
        text = b"{" + name + b":" + draw(st.sampled_from([b"1", b'"x"', b"null"])) + b"," + text[1:]
    return text


@PROPERTIES
@given(document=valid_events(), data=st.data())
def test_mutated_events_never_raise_and_match_the_reference(document, data) -> None:
    assert_verdict_is_the_reference(event_key(document), mutations(data.draw, document))


# --- (a) valid events are accepted, stored by the consumer and built by dbt -----------------


def consumer_accounting(settings_, schema: str, group: str, topic: str) -> dict[str, int]:
    """The consumer's own counts over every partition (raw.consumer_offsets)."""
    (row,) = fetch(
        settings_,
        "select coalesce(sum(inserted), 0), coalesce(sum(duplicates), 0), "
        "coalesce(sum(rejected), 0), coalesce(sum(next_offset - first_offset), 0) "
        "from {schema}.consumer_offsets where consumer_group = %s and kafka_topic = %s",
        schema,
        [group, topic],
    )
    return dict(zip(("inserted", "duplicates", "rejected", "consumed"), map(int, row), strict=True))


@pytest.mark.services
def test_generated_valid_events_are_accepted_stored_and_built(
    settings,
    dbt_env,  # noqa: F811 (the fixture imported above)
    kafka_topic,
) -> None:
    events: list[dict[str, Any]] = []

    @hypothesis_settings(PROPERTIES, max_examples=150)
    @given(document=valid_events())
    def accepted(document: dict[str, Any]) -> None:
        parsed = parse_event(event_key(document), encode_event(document))
        assert isinstance(parsed, Event), parsed
        assert as_document(parsed) == document  # money exact, nothing lost
        # One event per order: generated ids repeat (hypothesis likes "000..."), so renumber.
        order_id = f"{len(events):032x}"
        document["order"]["order_id"] = order_id
        document["event_id"] = f"{order_id}:{document['sequence']}"
        events.append(document)

    accepted()
    events.append(largest_order())
    assert isinstance(parse_event(event_key(events[-1]), encode_event(events[-1])), Event)
    assert len(events) > 100

    produce_events(settings, kafka_topic, events)
    group = unique_name("g")
    result = run_ingest(kafka_topic, dbt_env.raw_schema, group)
    assert result.returncode == 0, result.stderr
    accounting = consumer_accounting(settings, dbt_env.raw_schema, group, kafka_topic)
    assert accounting == {
        "inserted": len(events),
        "duplicates": 0,
        "rejected": 0,
        "consumed": len(events),
    }

    dbt_env.dbt("build")  # one build for the whole generated batch; fails the test on error

    facts = dbt_env.table("fact_orders")
    assert len(facts) == len(events)
    expected_price = sum(
        (item["price"] for e in events for item in e["order"]["items"]), Decimal(0)
    )
    assert sum(row["total_price"] for row in facts) == expected_price
    largest = next(row for row in facts if row["order_id"] == "f" * 32)
    assert largest["order_value"] == 2 * 1000 * MAX_MONEY
    assert largest["total_payment"] == 1000 * MAX_MONEY
    revenue = sum(row["total_revenue"] for row in dbt_env.table("agg_daily_revenue"))
    assert revenue == sum(
        (
            item["price"]
            for e in events
            if e["order"]["order_status"] not in ("canceled", "unavailable")
            for item in e["order"]["items"]
        ),
        Decimal(0),
    )
    assert len(dbt_env.table("dim_customers")) == len(
        {e["order"]["customer"]["customer_unique_id"] for e in events}
    )
