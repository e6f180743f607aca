"""The consumer's and the lag sensor's pure functions, without services: COPY text escaping,
batch parsing into COPY lines and verdicts, and run keys from offset ranges."""

from __future__ import annotations

import itertools

from kafka_io.consumer import copy_text, parse_batch
from kafka_io.contract import encode_event, event_key
from kafka_io.lag import PartitionLag, offset_range_key
from kafka_io.synthetic import synthetic_events


def test_copy_text_escapes_what_copy_text_format_reads_as_syntax():
    assert copy_text(b"plain {json}") == b"plain {json}"
    # Backslash first: the escapes added after it must not be escaped again.
    assert copy_text(b"a\\b\tc\nd\re") == b"a\\\\b\\tc\\nd\\re"
    assert copy_text(b"\\t") == b"\\\\t"  # a literal backslash-t in JSON stays two characters


def test_copy_text_round_trips_through_copys_unescaping():
    # PostgreSQL's COPY text format reads \\ \t \n \r back; nothing else may change.
    unescape = {b"\\\\": b"\\", b"\\t": b"\t", b"\\n": b"\n", b"\\r": b"\r"}
    for raw in (b"x\\y", b"\t\t", b"line\nbreak\r\n", "ção €".encode()):
        escaped, out, i = copy_text(raw), b"", 0
        while i < len(escaped):
            pair = escaped[i : i + 2]
            if pair in unescape:
                out, i = out + unescape[pair], i + 2
            else:
                out, i = out + escaped[i : i + 1], i + 1
        assert out == raw


def test_parse_batch_formats_valid_events_and_keeps_reasons_for_the_rest():
    events = list(itertools.islice(synthetic_events(3, seed=7), 5))
    records = [
        (p % 2, 10 + i, event_key(e), encode_event(e)) for i, (p, e) in enumerate(enumerate(events))
    ]
    records.append((0, 99, b"k", b"{not json"))
    records.append((1, 100, None, b""))
    parsed = parse_batch(records, "t.orders", epoch=3)
    assert parsed.messages == 7
    assert [(a.partition, a.offset) for a in parsed.accepted] == [(r[0], r[1]) for r in records[:5]]
    assert [i for i, _ in parsed.rejected] == [5, 6]
    assert parsed.rejected_reasons == {"invalid_json": 1, "empty": 1}
    assert parsed.first_offsets == {0: 10, 1: 11}
    assert parsed.next_offsets == {0: 100, 1: 101}
    line = parsed.accepted[0].line
    columns = line.rstrip(b"\n").split(b"\t")
    # event_id, order_id, event_type, event_time, sequence, payload, topic, epoch, partition, offset
    assert len(columns) == 10
    event = events[0]
    assert columns[0].decode() == event["event_id"]
    assert columns[1].decode() == event["order"]["order_id"]
    assert columns[6:] == [b"t.orders", b"3", b"0", b"10"]
    assert columns[5] == copy_text(encode_event(event))


def test_offset_range_key_names_only_the_lagging_ranges_and_is_stable():
    lags = [PartitionLag(0, 5, 9), PartitionLag(1, 7, 7), PartitionLag(2, 0, 3)]
    assert offset_range_key("t", lags) == "t|0:5-9,2:0-3"
    assert offset_range_key("t", list(lags)) == offset_range_key("t", lags)
    # New events on a partition make a new key: the sensor requests the new work once.
    assert offset_range_key("t", [PartitionLag(0, 5, 10), *lags[1:]]) != offset_range_key("t", lags)
    # The same ranges of a recreated topic (new id) are new work.
    again = [PartitionLag(0, 5, 9, "id-2"), PartitionLag(2, 0, 3, "id-2")]
    first = [PartitionLag(0, 5, 9, "id-1"), PartitionLag(2, 0, 3, "id-1")]
    assert offset_range_key("t", again) == "t@id-2|0:5-9,2:0-3" != offset_range_key("t", first)
    assert PartitionLag(3, 12, 10).lag == 0  # a committed offset past the end is no lag
