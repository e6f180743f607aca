"""Servers crashing under a running consumer, and group members coming, going and stalling.

Anything that stops or kills a server runs on the PRIVATE stack (tests/kafka_io/private_stack.py),
never on the shared one. The group tests only need the shared stack and its per-test topic,
schema and group. Exactly-once is proven by the consumer's own accounting (the IngestStats it
returns or reports, and the sums in raw.consumer_offsets), then by the rows themselves.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from kafka_io import workers
from kafka_io.synthetic import synthetic_events
from olist_dev.stack.common import unique_name, wait_until
from tests.conftest import REPO_ROOT
from tests.kafka_io.ingest_helpers import (
    end_offsets,
    fetch,
    ingest_cmd,
    produce_events,
    stored_offsets,
)
from tests.kafka_io.private_stack import env_for
from tests.kafka_io.test_faults import report

pytestmark = pytest.mark.services

# kafka-python fetches up to 8 MiB per partition at once (Ingestor's
# max_partition_fetch_bytes): a one-partition topic of ~10 MB makes sure the consumer still
# needs the broker after it is killed, instead of finishing from what it had buffered.
BIG_ONE_PARTITION_ORDERS = 2500


def books(settings, schema: str, group: str, topic: str) -> dict[str, int]:
    """The consumer's own accounting in PostgreSQL, and the rows it covers."""
    ((inserted, duplicates, rejected, next_offsets),) = fetch(
        settings,
        "select coalesce(sum(inserted), 0)::int, coalesce(sum(duplicates), 0)::int, "
        "coalesce(sum(rejected), 0)::int, coalesce(sum(next_offset), 0)::int "
        "from {schema}.consumer_offsets where consumer_group = %s and kafka_topic = %s",
        schema,
        [group, topic],
    )
    ((rows, distinct),) = fetch(
        settings, "select count(*), count(distinct event_id) from {schema}.raw_orders", schema
    )
    return {"inserted": inserted, "duplicates": duplicates, "rejected": rejected,
            "next_offsets": next_offsets, "rows": rows, "distinct": distinct}  # fmt: skip


def assert_books_exactly_once(settings, schema: str, group: str, topic: str, produced: int):
    assert books(settings, schema, group, topic) == {
        "inserted": produced, "duplicates": 0, "rejected": 0,
        "next_offsets": produced, "rows": produced, "distinct": produced,
    }  # fmt: skip
    assert stored_offsets(settings, schema, group, topic) == end_offsets(settings, topic)


def rows_now(settings, schema: str) -> int:
    try:
        return fetch(settings, "select count(*) from {schema}.raw_orders", schema)[0][0]
    except psycopg.errors.UndefinedTable:  # the consumer has not migrated yet
        return 0


def wait_rows(settings, schema: str, at_least: int, timeout: float = 120) -> int:
    assert wait_until(lambda: rows_now(settings, schema) >= at_least, timeout, 0.05), (
        f"fewer than {at_least} rows after {timeout}s"
    )
    return rows_now(settings, schema)


def private_run(stack, partitions: int, orders: int, seed: int, **retry) -> tuple:
    """Settings with ``retry`` budgets, a fresh topic, schema and group, events produced."""
    settings = stack.settings.model_copy(update=retry)
    topic = stack.new_topic(unique_name("t.orders"), partitions)
    schema = stack.new_schema(unique_name("t_raw"))
    produced = produce_events(settings, topic, synthetic_events(orders, seed=seed))
    return settings, topic, schema, unique_name("g"), produced


def ingest_in_thread(pool, settings, topic, schema, group, batch: int):
    """`olist ingest --until-caught-up --workers 1` in-process: its IngestStats come back."""
    return pool.submit(
        workers.ingest, settings, workers=1, topic=topic, group=group, schema=schema,
        max_batch=batch,
    )  # fmt: skip


def assert_stats_exactly_once(stats, produced: int) -> None:
    assert (stats.messages, stats.inserted, stats.duplicates, stats.rejected) == (
        produced, produced, 0, 0,
    )  # fmt: skip


# --- servers crashing under a running consumer (private stack) ---------------------------------
def test_postgresql_immediate_shutdown_mid_ingest_is_waited_out_exactly_once(private_stack, caplog):
    settings, topic, schema, group, produced = private_run(
        private_stack, 3, 750, seed=31, pg_retry_seconds=60
    )
    caplog.set_level(logging.WARNING, logger="kafka_io")
    with ThreadPoolExecutor(1) as pool:
        run = ingest_in_thread(pool, settings, topic, schema, group, batch=25)
        at_crash = wait_rows(settings, schema, 300)
        private_stack.crash_postgres()
        time.sleep(3)  # an outage, shorter than the budget
        assert not run.done()
        private_stack.start_postgres()
        stats = run.result(timeout=180)

    assert at_crash < produced, "the crash must land mid-ingest"
    retries = [r.message for r in caplog.records if "PostgreSQL at" in r.message]
    assert retries and all("for up to 60s" in m for m in retries), retries
    assert_stats_exactly_once(stats, produced)
    assert_books_exactly_once(settings, schema, group, topic, produced)


def test_broker_sigkilled_mid_ingest_and_restarted_the_run_completes_exactly_once(
    private_stack, caplog
):
    settings, topic, schema, group, produced = private_run(
        private_stack, 1, BIG_ONE_PARTITION_ORDERS, seed=32, kafka_retry_seconds=120
    )
    caplog.set_level(logging.WARNING, logger="kafka_io")
    with ThreadPoolExecutor(1) as pool:
        run = ingest_in_thread(pool, settings, topic, schema, group, batch=25)
        at_kill = wait_rows(settings, schema, 300)
        private_stack.kill_kafka()
        # The consumer drains what it had fetched, then finds the broker gone.
        assert wait_until(
            lambda: any("unreachable" in r.message for r in caplog.records), 120, 0.2
        ), "the consumer never noticed the dead broker"
        stalled = rows_now(settings, schema)
        private_stack.start_kafka()
        # Within the budget the same run goes on once the broker is back: nothing to rerun.
        stats = run.result(timeout=240)

    assert at_kill <= stalled < produced, (at_kill, stalled, produced)
    assert_stats_exactly_once(stats, produced)
    assert_books_exactly_once(settings, schema, group, topic, produced)


def test_kafka_down_past_its_budget_is_one_named_line_and_a_rerun_completes(private_stack):
    budget = 5
    settings, topic, schema, group, produced = private_run(
        private_stack, 1, BIG_ONE_PARTITION_ORDERS, seed=33, kafka_retry_seconds=budget
    )
    env = env_for(settings)
    proc = subprocess.Popen(
        ingest_cmd(topic, schema, group, "--until-caught-up", "--workers", "1",
                   "--batch-size", "25"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env,
    )  # fmt: skip
    wait_rows(settings, schema, 300)
    private_stack.kill_kafka()
    killed = time.monotonic()
    _, stderr = proc.communicate(timeout=180)
    elapsed = time.monotonic() - killed

    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    *logged, line = stderr.strip().splitlines()
    address = re.escape(settings.kafka_bootstrap)
    assert re.fullmatch(rf"olist: error: Kafka at {address} unavailable for {budget}s: \w+", line)
    assert all(" WARNING " in entry for entry in logged), logged  # log lines, not a traceback
    # Draining what was fetched before the kill, then the budget, then one probe's timeout.
    assert elapsed < budget + 45, elapsed
    partial = books(settings, schema, group, topic)
    assert 0 < partial["inserted"] == partial["rows"] == partial["next_offsets"] < produced

    private_stack.start_kafka()
    rerun = subprocess.run(
        ingest_cmd(topic, schema, group, "--until-caught-up", "--workers", "1"),
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=180,
    )  # fmt: skip

    assert rerun.returncode == 0, rerun.stderr
    remaining = produced - partial["inserted"]
    assert report(rerun.stdout) == {
        "messages": remaining, "inserted": remaining, "duplicates": 0, "dead": 0,
    }  # fmt: skip
    assert_books_exactly_once(settings, schema, group, topic, produced)


# --- group members coming, going and stalling (shared stack, own topic/schema/group) -------------
def follow(topic: str, schema: str, group: str) -> subprocess.Popen:
    """A `--follow` group member in one process, in small batches (a long mid-stream)."""
    return subprocess.Popen(
        ingest_cmd(topic, schema, group, "--follow", "--workers", "1", "--batch-size", "20"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT,
    )  # fmt: skip


def stop_members(*procs: subprocess.Popen) -> list[dict[str, int]]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), outputs
    return [report(out) for out, _ in outputs]


def test_a_member_joining_and_one_leaving_mid_stream_is_exactly_once(
    settings, raw_schema, kafka_topic
):
    group = unique_name("g")
    produced = produce_events(settings, kafka_topic, synthetic_events(500, seed=34))
    first = follow(kafka_topic, raw_schema, group)
    wait_rows(settings, raw_schema, 200)
    second = follow(kafka_topic, raw_schema, group)  # joins: a rebalance with a backlog
    # Both members hold partitions (each opens its connection on assignment), mid-stream.
    assert wait_until(lambda: _members_connected(settings, raw_schema, group) == 2, 60, 0.2)
    at_leave = rows_now(settings, raw_schema)
    (left,) = stop_members(first)  # leaves: the second one takes its partitions
    produced += produce_events(settings, kafka_topic, synthetic_events(200, seed=35))
    wait_rows(settings, raw_schema, produced)
    (stayed,) = stop_members(second)

    assert at_leave < produced
    assert left["inserted"] > 0 and stayed["inserted"] > 0, (left, stayed)
    assert left["inserted"] + stayed["inserted"] == produced
    assert left["duplicates"] == stayed["duplicates"] == 0
    assert_books_exactly_once(settings, raw_schema, group, kafka_topic, produced)


def _members_connected(settings, schema: str, group: str) -> int:
    """Members of ``group`` holding their PostgreSQL connection (opened on assignment)."""
    return fetch(
        settings,
        "select count(*) from pg_stat_activity where application_name = %s",
        schema,
        [f"olist-ingest:{group}"],
    )[0][0]


def _backend_states(settings, schema: str, group: str) -> list[str]:
    return [
        row[0]
        for row in fetch(
            settings,
            "select state from pg_stat_activity where application_name = %s",
            schema,
            [f"olist-ingest:{group}"],
        )
    ]


def freeze_between_transactions(proc: subprocess.Popen, settings, schema: str, group: str):
    """SIGSTOP ``proc`` at a moment its connection is idle (no transaction, no row lock):
    frozen inside a transaction it would block the other member on its row lock instead of
    becoming a zombie whose position goes stale."""
    for _ in range(200):
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(0.05)  # a statement already sent would show as active by now
        if _backend_states(settings, schema, group) == ["idle"]:
            return
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("the member never froze between two transactions")


def test_a_zombie_member_resumed_after_its_session_timeout_writes_nothing_twice(
    settings, raw_schema, kafka_topic
):
    group = unique_name("g")
    produced = produce_events(settings, kafka_topic, synthetic_events(700, seed=36))
    zombie = follow(kafka_topic, raw_schema, group)
    wait_rows(settings, raw_schema, 200)
    freeze_between_transactions(zombie, settings, raw_schema, group)
    stopped_at = rows_now(settings, raw_schema)
    try:
        heir = follow(kafka_topic, raw_schema, group)
        # Past the 6 s session timeout the group drops the zombie and the heir takes its
        # partitions and writes past the zombie's position.
        heir_wrote = wait_until(lambda: rows_now(settings, raw_schema) > stopped_at + 100, 60, 0.2)
    finally:
        os.kill(zombie.pid, signal.SIGCONT)
    wait_rows(settings, raw_schema, produced)
    zombie_books, heir_books = stop_members(zombie, heir)

    assert heir_wrote, "the heir never took over from the stopped member"
    assert stopped_at < produced
    assert zombie_books["inserted"] + heir_books["inserted"] == produced
    assert zombie_books["duplicates"] == heir_books["duplicates"] == 0
    # What a member polled beyond what it stored is what the fencing dropped: records another
    # member had written meanwhile (the zombie's stale batch), never stored twice.
    fenced = {
        name: b["messages"] - b["inserted"] - b["duplicates"] - b["dead"]
        for name, b in (("zombie", zombie_books), ("heir", heir_books))
    }
    # The zombie resumed with a batch polled before it froze, from offsets the heir has
    # written since: the check under the row lock dropped it.
    assert fenced["zombie"] > 0 and fenced["heir"] >= 0, fenced
    assert_books_exactly_once(settings, raw_schema, group, kafka_topic, produced)
