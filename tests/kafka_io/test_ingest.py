"""Exactly-once ingestion against the real Kafka and PostgreSQL: counts, offsets, duplicates,
dead letters, crashes (SIGKILL) and several consumers in one group."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import psycopg
import pytest

from kafka_io.contract import encode_event
from kafka_io.settings import MIB
from kafka_io.synthetic import synthetic_events
from tests.conftest import unique_name
from tests.kafka_io.ingest_helpers import (
    end_offsets,
    fetch,
    ingest_cmd,
    kafka_committed,
    produce_events,
    produce_raw,
    run_ingest,
    start_ingest,
    stored_offsets,
)


def assert_exactly_once(settings, schema, group, topic, expected_ids: set[str]) -> None:
    """Every expected event exactly once; offsets in PostgreSQL cover exactly the rows."""
    rows = fetch(settings, "select event_id from {schema}.raw_orders", schema)
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)) == len(expected_ids)
    assert set(ids) == expected_ids
    dupes = fetch(
        settings,
        "select count(*) from (select 1 from {schema}.raw_orders group by kafka_topic, "
        "kafka_partition, kafka_offset having count(*) > 1) d",
        schema,
    )
    assert dupes == [(0,)]
    (rejected,) = fetch(settings, "select count(*) from {schema}.raw_orders_rejected", schema)[0]
    assert stored_offsets(settings, schema, group, topic) == end_offsets(settings, topic)
    assert sum(end_offsets(settings, topic).values()) == len(ids) + rejected


def test_ingest_writes_every_event_once_and_stores_offsets(settings, raw_schema, kafka_topic):
    events = list(synthetic_events(300, seed=1))
    produce_events(settings, kafka_topic, events)
    group = unique_name("g")

    result = run_ingest(kafka_topic, raw_schema, group)

    assert result.returncode == 0, result.stderr
    assert f"{len(events)} new events, 0 duplicates skipped, 0 dead letters" in result.stdout
    assert_exactly_once(settings, raw_schema, group, kafka_topic, {e["event_id"] for e in events})
    # Offsets mirrored to Kafka so standard tooling shows the group's lag (zero here).
    assert kafka_committed(settings, group, kafka_topic) == end_offsets(settings, kafka_topic)
    # The payload is the event as received, money exact.
    first = events[0]
    (payload,) = fetch(
        settings, "select payload::text from {schema}.raw_orders where event_id = %s",
        raw_schema, [first["event_id"]],
    )[0]  # fmt: skip
    assert json.loads(payload) == json.loads(encode_event(first))


def test_second_replay_adds_nothing_and_counts_duplicates(settings, raw_schema, kafka_topic):
    events = list(synthetic_events(120, seed=2))
    group = unique_name("g")
    produce_events(settings, kafka_topic, events)
    assert run_ingest(kafka_topic, raw_schema, group).returncode == 0

    rerun = run_ingest(kafka_topic, raw_schema, group)
    assert "ingested 0 messages" in rerun.stdout
    produce_events(settings, kafka_topic, events)  # the whole replay again
    replayed = run_ingest(kafka_topic, raw_schema, group)

    assert replayed.returncode == 0, replayed.stderr
    assert f"0 new events, {len(events)} duplicates skipped" in replayed.stdout
    (count,) = fetch(settings, "select count(*) from {schema}.raw_orders", raw_schema)[0]
    assert count == len(events)


def bad_messages(good: dict) -> dict[str, tuple[bytes | None, bytes | None]]:
    """One message per bad-input class, keyed by the reason kind it must produce."""
    key = good["order"]["order_id"].encode()

    def variant(mutate) -> bytes:
        doc = json.loads(encode_event(good))
        mutate(doc)
        return json.dumps(doc).encode()

    return {
        "invalid_json": (key, b"{not json"),
        "not_utf8": (key, b'{"event_id": "\xff\xfe"}'),
        "schema_violation/missing": (key, variant(lambda d: d.pop("event_type"))),
        "schema_violation/type": (key, variant(lambda d: d.update(sequence="one"))),
        "schema_violation/event_type": (key, variant(lambda d: d.update(event_type="order_lost"))),
        "schema_violation/negative": (
            key,
            variant(
                lambda d: d["order"]["payments"].append(
                    {
                        "payment_sequential": 9,
                        "payment_type": "voucher",
                        "payment_installments": 1,
                        "payment_value": -5.0,
                    }
                )
            ),
        ),  # fmt: skip
        "unknown_schema_version": (key, variant(lambda d: d.update(schema_version=2))),
        "key_mismatch": (b"f" * 32, encode_event(good)),
        # Over our 1,000,000-byte limit but under the broker default (1,048,588).
        "oversized": (key, b'{"x": "' + b"a" * 1_010_000 + b'"}'),
        "empty": (key, None),
    }


@pytest.mark.parametrize(
    "fetch_limits",
    [None, (MIB, MIB)],
    ids=["default_fetch_limits", "smallest_fetch_limits"],
)
def test_bad_messages_become_dead_letters_and_ingestion_goes_on(
    settings, raw_schema, kafka_topic, monkeypatch, fetch_limits
):
    # At the settings' floor (1 MiB in all and per partition) a fetch still carries the
    # oversized message whole: it is dead-lettered, and what follows it is ingested.
    if fetch_limits:
        monkeypatch.setenv("OLIST_KAFKA_FETCH_MAX_BYTES", str(fetch_limits[0]))
        monkeypatch.setenv("OLIST_KAFKA_MAX_PARTITION_FETCH_BYTES", str(fetch_limits[1]))
    good = list(synthetic_events(30, seed=3))
    bad = bad_messages(good[0])
    produce_events(settings, kafka_topic, good[:10])
    produce_raw(settings, kafka_topic, bad.values())
    produce_events(settings, kafka_topic, good[10:])
    group = unique_name("g")

    result = run_ingest(kafka_topic, raw_schema, group)

    assert result.returncode == 0, result.stderr
    assert f"{len(good)} new events" in result.stdout
    assert f"{len(bad)} dead letters" in result.stdout
    rows = fetch(
        settings,
        "select split_part(error_reason, ':', 1), message_key, message_value "
        "from {schema}.raw_orders_rejected",
        raw_schema,
    )
    assert len(rows) == len(bad)
    got = sorted((kind, bytes(k) if k else None, bytes(v) if v else None) for kind, k, v in rows)
    want = sorted((kind.split("/")[0], k, v) for kind, (k, v) in bad.items())
    assert got == want  # the raw bytes are kept, nothing lost
    assert_exactly_once(settings, raw_schema, group, kafka_topic, {e["event_id"] for e in good})


def wait_for_rows(settings, schema, at_least: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            (count,) = fetch(settings, "select count(*) from {schema}.raw_orders", schema)[0]
        except psycopg.errors.UndefinedTable:  # the consumer has not migrated yet
            count = 0
        if count >= at_least:
            return count
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} rows after {timeout}s")


def test_sigkill_at_several_points_then_restart_is_exactly_once(settings, raw_schema, kafka_topic):
    events = list(synthetic_events(2500, seed=4))
    produce_events(settings, kafka_topic, events)
    group = unique_name("g")
    # Kill mid-run at growing progress points: the process dies wherever it is (between
    # batches, inside a transaction, before the Kafka commit).
    for progress in (150, 1500, 4000):
        # One process: the one killed is the one writing (see test_workers_* for several).
        proc = start_ingest(
            kafka_topic, raw_schema, group, "--follow", "--batch-size", "97", "--workers", "1"
        )
        wait_for_rows(settings, raw_schema, progress)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    partial = fetch(settings, "select count(*) from {schema}.raw_orders", raw_schema)[0][0]
    assert 0 < partial < len(events), "the kills must land mid-run to test anything"

    result = run_ingest(kafka_topic, raw_schema, group, "--batch-size", "97")

    assert result.returncode == 0, result.stderr
    assert_exactly_once(settings, raw_schema, group, kafka_topic, {e["event_id"] for e in events})


def test_sigterm_finishes_the_batch_and_exits_zero(settings, raw_schema, kafka_topic):
    events = list(synthetic_events(1500, seed=5))
    produce_events(settings, kafka_topic, events)
    group = unique_name("g")
    proc = start_ingest(kafka_topic, raw_schema, group, "--follow", "--batch-size", "50")
    wait_for_rows(settings, raw_schema, 100)  # mid-run, between or inside batches
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    (count,) = fetch(settings, "select count(*) from {schema}.raw_orders", raw_schema)[0]
    # Whatever was committed is exactly covered by the stored offsets.
    assert sum(stored_offsets(settings, raw_schema, group, kafka_topic).values()) == count


def test_two_consumers_in_one_group_are_exactly_once(settings, raw_schema, kafka_topic):
    events = list(synthetic_events(3000, seed=6))
    group = unique_name("g")
    procs = [
        start_ingest(kafka_topic, raw_schema, group, "--follow", "--batch-size", "101")
        for _ in range(2)
    ]
    produce_events(settings, kafka_topic, events)
    expected = {e["event_id"] for e in events}
    wait_for_rows(settings, raw_schema, len(expected), timeout=120)
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    outputs = [proc.communicate(timeout=30) for proc in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    # The members' own reports add up to the whole topic, each event once.
    new_events = [int(re.search(r"(\d+) new events", out).group(1)) for out, _ in outputs]
    assert sum(new_events) == len(expected)
    assert_exactly_once(settings, raw_schema, group, kafka_topic, expected)


def child_pids(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        with open(path) as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def wait_for_children(pid: int, count: int, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # spawn also starts multiprocessing's resource tracker: keep the ingest workers.
        workers = [c for c in child_pids(pid) if "multiprocessing.spawn" in _cmdline(c)]
        if len(workers) >= count:
            return workers
        time.sleep(0.05)
    raise AssertionError(f"{count} worker processes not started after {timeout}s")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def test_workers_share_the_partitions_exactly_once(settings, raw_schema, kafka_topic):
    events = list(synthetic_events(1200, seed=7))
    produce_events(settings, kafka_topic, events)
    group = unique_name("g")

    result = run_ingest(kafka_topic, raw_schema, group, "--workers", "4", "--batch-size", "64")

    assert result.returncode == 0, result.stderr
    # The report adds up the workers' counts.
    assert f"ingested {len(events)} messages" in result.stdout
    assert f"{len(events)} new events, 0 duplicates skipped, 0 dead letters" in result.stdout
    assert_exactly_once(settings, raw_schema, group, kafka_topic, {e["event_id"] for e in events})
    # Statically assigned partitions still mirror their offsets to the group in Kafka.
    assert kafka_committed(settings, group, kafka_topic) == end_offsets(settings, kafka_topic)


def test_a_killed_worker_fails_the_run_and_a_rerun_completes_it(settings, raw_schema, kafka_topic):
    events = list(synthetic_events(3000, seed=8))
    produce_events(settings, kafka_topic, events)
    group = unique_name("g")
    proc = start_ingest(
        kafka_topic, raw_schema, group, "--until-caught-up", "--workers", "2", "--batch-size", "20"
    )
    workers = wait_for_children(proc.pid, 2)
    wait_for_rows(settings, raw_schema, 200)
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 1
    assert "olist: error: ingestion stopped: worker 0: died without a result" in stderr
    partial = fetch(settings, "select count(*) from {schema}.raw_orders", raw_schema)[0][0]
    assert 0 < partial < len(events)
    rerun = run_ingest(kafka_topic, raw_schema, group, "--workers", "2")
    assert rerun.returncode == 0, rerun.stderr
    assert_exactly_once(settings, raw_schema, group, kafka_topic, {e["event_id"] for e in events})


def test_workers_stop_when_their_parent_is_killed(settings, raw_schema, kafka_topic):
    produce_events(settings, kafka_topic, synthetic_events(200, seed=9))
    group = unique_name("g")
    proc = start_ingest(kafka_topic, raw_schema, group, "--follow", "--workers", "2")
    workers = wait_for_children(proc.pid, 2)
    wait_for_rows(settings, raw_schema, 1)

    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    deadline = time.monotonic() + 30
    while any(_cmdline(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [w for w in workers if _cmdline(w)], "orphaned workers still running"
    # They stopped cleanly: whatever they wrote is exactly covered by the stored offsets.
    (count,) = fetch(settings, "select count(*) from {schema}.raw_orders", raw_schema)[0]
    assert sum(stored_offsets(settings, raw_schema, group, kafka_topic).values()) == count


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_missing_postgresql_or_kafka_is_named_in_one_line(raw_schema, kafka_topic):
    cmd = ingest_cmd(kafka_topic, raw_schema, unique_name("g"), "--until-caught-up")
    for env, expected in (
        ({"OLIST_PG_DSN": f"postgresql://x:y@127.0.0.1:{_free_port()}/olist"}, "PostgreSQL at"),
        ({"OLIST_KAFKA_BOOTSTRAP": f"127.0.0.1:{_free_port()}"}, "Kafka at 127.0.0.1:"),
    ):
        # A small retry budget: an unreachable service is an outage, waited out that long.
        budget = {"OLIST_PG_RETRY_SECONDS": "2", "OLIST_KAFKA_RETRY_SECONDS": "2"}
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=120, env={**os.environ, **budget, **env}
        )
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith(f"olist: error: {expected}"), result.stderr
