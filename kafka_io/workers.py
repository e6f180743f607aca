"""Several consumer processes, one share of the partitions each: ingestion on every core.

One Python process validates and formats about 30k events/s while PostgreSQL parses the COPY on
another core; a second process doubles both. `--until-caught-up` splits the partitions
statically (no group rebalance to wait for): worker k reads partitions k, k+N, k+2N, ... up to
the end offsets seen at start. `--follow` starts N members of the consumer group and lets
Kafka spread the partitions (and rebalance if another consumer joins). Exactly-once does not
depend on the split: every partition's rows and offsets are written in one transaction and
fenced under a row lock, whichever process holds it.

Signals: SIGINT/SIGTERM to this process are passed on; each worker finishes its batch in flight
and exits 0. A worker also stops if its parent disappears (SIGKILL), so none is left behind.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer

from kafka_io.consumer import Ingestor, IngestStats, partition_end_offsets, retrying
from kafka_io.errors import IngestError
from kafka_io.kafka_client import client_config
from kafka_io.migrations import migrate_dsn
from kafka_io.settings import Settings

log = logging.getLogger(__name__)


class WorkerError(RuntimeError):
    """A worker process failed; the others finished their shares (PostgreSQL holds where each
    partition stopped, so a rerun resumes exactly there)."""


@dataclass(frozen=True)
class Share:
    topic: str
    group: str
    schema: str
    partitions: list[int] | None  # None: a group member, partitions assigned by Kafka
    stop_at: dict[int, int] | None
    until_caught_up: bool
    max_batch: int


def default_workers() -> int:
    return os.cpu_count() or 1


def topic_end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """Every partition of ``topic`` and its end offset now; IngestError if there is no such
    topic (the broker does not create it: reading nothing would look like success)."""
    consumer = KafkaConsumer(**client_config(settings))
    try:
        ends = partition_end_offsets(consumer, topic)
    finally:
        consumer.close()
    if not ends:
        raise IngestError(f"--topic {topic}: no such topic on Kafka at {settings.kafka_bootstrap}")
    return ends


def ingest(
    settings: Settings,
    *,
    workers: int,
    topic: str | None = None,
    group: str | None = None,
    schema: str | None = None,
    until_caught_up: bool = True,
    max_batch: int = 5000,
) -> IngestStats:
    """Ingest with ``workers`` processes (1: in this process) and add up what they did."""
    topic = topic or settings.kafka_topic
    group = group or settings.kafka_group
    schema = schema or settings.raw_schema
    # Here, before any worker starts: a missing service, schema or topic fails once, with
    # its own message.
    budget = None if not until_caught_up else settings.pg_retry_seconds
    retrying(settings.pg_dsn, budget, migrate_dsn, settings.pg_dsn, schema)
    stop_at = topic_end_offsets(settings, topic)
    if until_caught_up:
        partitions = sorted(stop_at)
        n = max(1, min(workers, len(partitions)))
        shares = [
            Share(topic, group, schema, partitions[k::n], stop_at, True, max_batch)
            for k in range(n)
        ]
    else:
        shares = [Share(topic, group, schema, None, None, False, max_batch) for _ in range(workers)]
    if len(shares) == 1:
        return _run_share(settings, shares[0])
    return _run_processes(settings, shares)


def _run_share(settings: Settings, share: Share) -> IngestStats:
    ingestor = Ingestor(
        settings,
        topic=share.topic,
        group=share.group,
        schema=share.schema,
        max_batch=share.max_batch,
        partitions=share.partitions,
    )
    try:
        return ingestor.run(until_caught_up=share.until_caught_up, stop_at=share.stop_at)
    finally:
        ingestor.close()


def _run_processes(settings: Settings, shares: list[Share]) -> IngestStats:
    started = time.monotonic()
    context = multiprocessing.get_context("spawn")  # never fork Kafka's threads
    results: Any = context.SimpleQueue()
    level = logging.getLogger().getEffectiveLevel()
    processes = [
        context.Process(
            target=_worker_main,
            args=(settings, share, k, results, os.getpid(), level),
            name=f"olist-ingest-{k}",
        )
        for k, share in enumerate(shares)
    ]
    with _forward_signals(processes) as stopping:
        for process in processes:
            if not stopping.is_set():  # a signal before the start: start no more workers
                process.start()
        for process in processes:
            if process.pid is not None:
                process.join()
    outcomes: dict[int, IngestStats | str] = {}
    while not results.empty():
        k, outcome = results.get()
        outcomes[k] = outcome
    failures, parts = [], []
    for k, process in enumerate(processes):
        if process.pid is None:  # never started (stopped first): nothing done, nothing lost
            continue
        outcome = outcomes.get(k, "died without a result")
        if isinstance(outcome, IngestStats) and process.exitcode == 0:
            parts.append(outcome)
        elif isinstance(outcome, IngestError):
            failures.append(outcome)
        elif isinstance(outcome, str):
            failures.append(f"worker {k}: {outcome}")
        else:
            failures.append(f"worker {k}: exit code {process.exitcode}")
    named = [f for f in failures if isinstance(f, IngestError)]
    if named:  # an outage or an offset mismatch: the cause itself is the one line
        raise named[0]
    if failures:
        raise WorkerError("; ".join(failures))
    total = merge(parts)
    total.seconds = time.monotonic() - started
    return total


def merge(parts: list[IngestStats]) -> IngestStats:
    total = IngestStats()
    for part in parts:
        total.messages += part.messages
        total.inserted += part.inserted
        total.duplicates += part.duplicates
        total.rejected += part.rejected
        total.batches += part.batches
        for kind, n in part.rejected_reasons.items():
            total.rejected_reasons[kind] = total.rejected_reasons.get(kind, 0) + n
        for p, r in part.ranges.items():
            total.add_range(p, r.first, r.last)
    return total


@contextmanager
def _forward_signals(processes: list[multiprocessing.process.BaseProcess]):
    stopping = threading.Event()

    def forward(signum: int, _frame: object) -> None:
        stopping.set()
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signum)

    if threading.current_thread() is not threading.main_thread():
        yield stopping
        return
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopping
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _worker_main(
    settings: Settings, share: Share, k: int, results: Any, parent: int, level: int
) -> None:
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s worker-{k} %(message)s")
    # As in the CLI: kafka-python's own warnings only when verbose (it retries by itself).
    logging.getLogger("kafka").setLevel(
        logging.WARNING if level <= logging.INFO else logging.CRITICAL
    )
    _stop_when_orphaned(parent)
    try:
        stats = _run_share(settings, share)
    except IngestError as exc:  # a named cause: the parent prints it as its one line
        log.info("worker %d stopped: %s", k, exc)  # the parent prints it, once
        results.put((k, exc))
        raise SystemExit(1) from None
    except BaseException as exc:  # reported to the parent, which exits non-zero
        log.exception("worker %d failed", k)
        results.put((k, f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None
    results.put((k, stats))


def _stop_when_orphaned(parent: int) -> None:
    """If the parent dies (even SIGKILL), finish the batch in flight and stop like on SIGTERM."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="olist-orphan-watch", daemon=True).start()
