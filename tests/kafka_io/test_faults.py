"""Faults on the real stack that must neither stop ingestion in silence nor lose a record:
records PostgreSQL refuses, a topic deleted and recreated, a second consumer group over the
same raw schema, and outages past the retry budget. Exactly-once is proven by the consumer's
own accounting (its report and raw.consumer_offsets), not only by the primary key."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import psycopg
import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError
from psycopg import sql

from kafka_io.audit import KafkaLog, log_problem, read_kafka_log, reconcile_offsets
from kafka_io.cli import group_problem, schema_problem, topic_problem
from kafka_io.consumer import (
    PartitionLog,
    is_outage,
    is_record_error,
    offset_mismatch,
    pg_address,
)
from kafka_io.migrations import migrate_dsn
from kafka_io.synthetic import synthetic_events
from olist_dev.stack.common import unique_name
from olist_dev.stack.postgres import admin_connect
from tests.conftest import REPO_ROOT
from tests.kafka_io.ingest_helpers import (
    end_offsets,
    fetch,
    produce_events,
    produce_raw,
    run_ingest,
    stored_offsets,
)

REPORT = re.compile(
    r"ingested (\d+) messages .*: (\d+) new events, (\d+) duplicates skipped, (\d+) dead letters"
)


def report(stdout: str) -> dict[str, int]:
    """The consumer's own accounting, from its one-line report."""
    found = REPORT.search(stdout)
    assert found, stdout
    return dict(
        zip(("messages", "inserted", "duplicates", "dead"), map(int, found.groups()), strict=True)
    )


def olist(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [os.path.join(REPO_ROOT, ".venv/bin/olist"), *args],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The stderr of a failed command: exactly one line, `olist: error: ...`, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("olist: error: "), result.stderr
    return lines[0]


def assert_reconciled(settings, schema: str, topic: str) -> list[dict]:
    with psycopg.connect(settings.pg_dsn) as conn:
        rows = reconcile_offsets(conn, schema, topic, read_kafka_log(settings, topic))
    assert rows and all(r["ok"] for r in rows), rows
    return rows


# --- pure functions ---------------------------------------------------------------------------
def test_offset_mismatch_names_the_side_of_the_log_that_moved():
    assert offset_mismatch(15, PartitionLog(0, 117)) is None
    assert offset_mismatch(0, PartitionLog(0, 0)) is None
    assert offset_mismatch(120, PartitionLog(0, 117))[0] == "log end 117"
    assert offset_mismatch(3, PartitionLog(10, 117))[0] == "log start 10"


def test_log_problem_and_topic_identity_in_the_reconcile():
    log = KafkaLog("id-1", {0: 0, 1: 5}, {0: 10, 1: 9})
    assert log_problem(0, 0, 10, log) is None
    assert "past Kafka's log end 10" in log_problem(0, 4, 11, log)
    assert "before Kafka's log start 5" in log_problem(1, 4, 9, log)
    assert "not in Kafka's topic" in log_problem(2, 0, 0, log)


def test_record_errors_are_data_and_integrity_but_not_replays_or_outages():
    assert is_record_error(psycopg.errors.CheckViolation())
    assert is_record_error(psycopg.errors.NotNullViolation())
    assert is_record_error(psycopg.errors.DatetimeFieldOverflow())
    assert not is_record_error(psycopg.errors.UniqueViolation())  # a replay: skipped instead
    assert not is_record_error(psycopg.errors.InsufficientPrivilege())
    assert not is_record_error(psycopg.errors.DiskFull())


def test_outages_are_retried_but_a_wrong_password_is_not():
    assert is_outage(psycopg.OperationalError("connection refused"))  # no SQLSTATE
    assert is_outage(psycopg.errors.AdminShutdown())
    assert is_outage(psycopg.errors.CannotConnectNow())
    assert not is_outage(psycopg.errors.InvalidPassword())
    assert not is_outage(psycopg.errors.DiskFull())
    assert pg_address("postgresql://u:secret@db.example:6543/olist") == "db.example:6543"


@pytest.mark.parametrize(
    ("check", "value", "ok"),
    [
        (topic_problem, "olist.orders", True),
        (topic_problem, "no spaces", False),
        (topic_problem, "..", False),
        (topic_problem, "x" * 250, False),
        (group_problem, "olist-ingest", True),
        (group_problem, "  ", False),
        (group_problem, "a\nb", False),
        (schema_problem, "raw", True),
        (schema_problem, "s" * 64, False),
    ],
)
def test_option_checks(check, value, ok):
    assert (check(value) is None) == ok


# --- the writer's defence in depth ------------------------------------------------------------
def _migrated(settings, schema: str) -> None:
    migrate_dsn(settings.pg_dsn, schema)


def test_records_postgresql_refuses_become_dead_letters_and_ingestion_goes_on(
    settings, raw_schema, kafka_topic
):
    events = list(synthetic_events(150, seed=21))
    refused = {e["event_id"] for e in events if e["sequence"] == 2}
    assert 0 < len(refused) < len(events)
    _migrated(settings, raw_schema)
    with admin_connect(settings) as conn:  # a rule the contract does not know of
        conn.execute(
            sql.SQL("alter table {} add constraint t_no_second_event check (sequence <> 2)").format(
                sql.Identifier(raw_schema, "raw_orders")
            )
        )
    produce_events(settings, kafka_topic, events)
    group = unique_name("g")

    result = run_ingest(kafka_topic, raw_schema, group, "--workers", "1", "--batch-size", "40")

    assert result.returncode == 0, result.stderr
    assert report(result.stdout) == {
        "messages": len(events),
        "inserted": len(events) - len(refused),
        "duplicates": 0,
        "dead": len(refused),
    }
    reasons = fetch(settings, "select error_reason, message_value from {schema}.raw_orders_rejected",
                    raw_schema)  # fmt: skip
    assert len(reasons) == len(refused)
    assert all(r.startswith("db_rejected: ") and "t_no_second_event" in r for r, _ in reasons)
    assert {json.loads(bytes(v))["event_id"] for _, v in reasons} == (
        refused
    )  # the original bytes are kept
    stored = fetch(settings, "select event_id from {schema}.raw_orders", raw_schema)
    assert {r[0] for r in stored} == {e["event_id"] for e in events} - refused
    assert stored_offsets(settings, raw_schema, group, kafka_topic) == end_offsets(
        settings, kafka_topic
    )
    assert_reconciled(settings, raw_schema, kafka_topic)


def test_an_error_that_is_not_about_a_record_stops_loudly_and_writes_nothing(
    settings, raw_schema, kafka_topic
):
    _migrated(settings, raw_schema)
    with admin_connect(settings) as conn:  # stands for "disk full": not the record's fault
        conn.execute(
            sql.SQL(
                "create function {fn}() returns trigger language plpgsql as $$ begin "
                "raise exception 'no space left' using errcode = 'disk_full'; end $$; "
                "create trigger t_full before insert on {tbl} for each row execute function {fn}()"
            ).format(
                fn=sql.Identifier(raw_schema, "t_full"),
                tbl=sql.Identifier(raw_schema, "raw_orders"),
            )  # fmt: skip
        )
    produce_events(settings, kafka_topic, synthetic_events(30, seed=22))
    group = unique_name("g")

    result = run_ingest(kafka_topic, raw_schema, group, "--workers", "1")

    assert "no space left" in one_error_line(result)
    assert fetch(settings, "select count(*) from {schema}.raw_orders_rejected", raw_schema) == [
        (0,)
    ]
    assert stored_offsets(settings, raw_schema, group, kafka_topic) == {}


# --- offsets that Kafka's log no longer holds ---------------------------------------------------
def _recreate(settings, topic: str, partitions: int = 3) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.delete_topics([topic])
        deadline = time.monotonic() + 60
        while True:  # deletion is asynchronous: creating too early fails
            try:
                admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                              replication_factor=1)])  # fmt: skip
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        admin.close()


def test_a_recreated_topic_with_more_events_stops_then_an_explicit_reset_ingests_it(
    settings, raw_schema, kafka_topic
):
    first = list(synthetic_events(8, seed=23))
    group = unique_name("g")
    produce_events(settings, kafka_topic, first)
    assert report(run_ingest(kafka_topic, raw_schema, group).stdout)["inserted"] == len(first)
    before = stored_offsets(settings, raw_schema, group, kafka_topic)

    _recreate(settings, kafka_topic)
    second = list(synthetic_events(60, seed=24))  # more events than were stored
    produce_events(settings, kafka_topic, second)
    assert all(end_offsets(settings, kafka_topic)[p] > n for p, n in before.items())

    stopped = run_ingest(kafka_topic, raw_schema, group)

    line = one_error_line(stopped)
    found = re.search(rf"offset mismatch on {re.escape(kafka_topic)}\[(\d)\]: "
                      r"stored next_offset (\d+), Kafka log end (\d+) \(topic recreated", line)  # fmt: skip
    assert found, line
    partition = int(found.group(1))
    assert int(found.group(2)) == before[partition]
    assert int(found.group(3)) == end_offsets(settings, kafka_topic)[partition]
    # Nothing skipped, nothing written.
    assert fetch(settings, "select count(*) from {schema}.raw_orders", raw_schema) == [
        (len(first),)
    ]
    with psycopg.connect(settings.pg_dsn) as conn:
        kafka = read_kafka_log(settings, kafka_topic)
        assert not all(r["ok"] for r in reconcile_offsets(conn, raw_schema, kafka_topic, kafka))

    reset = olist("offsets", "reset", "--topic", kafka_topic, "--group", group,
                  "--schema", raw_schema, "--to-log-start", "--reason", "topic recreated")  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    assert "epoch 1" in reset.stdout
    resumed = run_ingest(kafka_topic, raw_schema, group)

    assert resumed.returncode == 0, resumed.stderr
    assert report(resumed.stdout) == {
        "messages": len(second), "inserted": len(second), "duplicates": 0, "dead": 0,
    }  # fmt: skip
    assert fetch(settings, "select count(*) from {schema}.raw_orders", raw_schema) == [
        (len(first) + len(second),)
    ]
    resets = fetch(settings, "select kafka_partition, old_epoch, old_next_offset, new_epoch, "
                   "new_next_offset, reason from {schema}.offset_resets", raw_schema)  # fmt: skip
    assert sorted(resets) == sorted(
        (p, 0, before.get(p), 1, 0, "topic recreated") for p in range(3)
    )
    assert_reconciled(settings, raw_schema, kafka_topic)


# --- a second consumer group over the same raw schema -------------------------------------------
def test_a_new_group_over_an_existing_schema_counts_everything_as_duplicates(
    settings, raw_schema, kafka_topic
):
    events = list(synthetic_events(40, seed=25))
    produce_events(settings, kafka_topic, events)
    produce_raw(settings, kafka_topic, [(b"k", b"{not json"), (b"k", None)])
    first = run_ingest(kafka_topic, raw_schema, unique_name("g"))
    n = len(events)
    assert report(first.stdout) == {"messages": n + 2, "inserted": n, "duplicates": 0, "dead": 2}

    second_group = unique_name("g")
    second = run_ingest(kafka_topic, raw_schema, second_group)

    assert second.returncode == 0, second.stderr
    # Dead letters already stored for the same topic/partition/offset are not written again:
    # like valid events seen before, they count as duplicates.
    assert report(second.stdout) == {
        "messages": n + 2,
        "inserted": 0,
        "duplicates": n + 2,
        "dead": 0,
    }
    assert fetch(settings, "select count(*) from {schema}.raw_orders_rejected", raw_schema) == [
        (2,)
    ]
    assert stored_offsets(settings, raw_schema, second_group, kafka_topic) == end_offsets(
        settings, kafka_topic
    )
    assert_reconciled(settings, raw_schema, kafka_topic)


# --- outages longer than the retry budget -------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_postgresql_down_longer_than_the_budget_is_one_named_line_within_the_budget(
    raw_schema, kafka_topic
):
    port = _free_port()
    started = time.monotonic()
    result = olist("ingest", "--until-caught-up", "--topic", kafka_topic, "--schema", raw_schema,
                   env={"OLIST_PG_DSN": f"postgresql://u:secret@127.0.0.1:{port}/olist",
                        "OLIST_PG_RETRY_SECONDS": "3"})  # fmt: skip
    elapsed = time.monotonic() - started

    *retries, line = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert line.startswith(f"olist: error: PostgreSQL at 127.0.0.1:{port} unavailable for 3s: ")
    # One log line per retry, each saying how long it will go on.
    assert retries and all("retrying in" in r and "for up to 3s" in r for r in retries), retries
    assert "secret" not in result.stderr
    assert 3 <= elapsed < 3 + 15, elapsed
