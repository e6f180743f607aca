"""Replays order events into Kafka, keyed by order_id, with every send confirmed."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import islice

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.partitioner import DefaultPartitioner, murmur2

from kafka_io.contract import encode_event, event_key
from kafka_io.kafka_client import client_config
from kafka_io.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ReplayStats:
    events: int = 0
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def ensure_topic(settings: Settings, topic: str, partitions: int) -> bool:
    """Create ``topic`` if missing; True when it was created."""
    admin = KafkaAdminClient(**client_config(settings))
    try:
        if topic in admin.list_topics():
            return False
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        return True
    except TopicAlreadyExistsError:
        return False
    finally:
        admin.close()


# An order's events are days apart in event time, i.e. a few thousand orders apart in a replay:
# this many recent keys keep their hash until the order's last event.
_KEY_HASHES_KEPT = 1 << 16


class KeyHashPartitioner(DefaultPartitioner):
    """kafka-python's default partitioner (murmur2 of the key, as the Java client: the same
    partition for the same key), hashing each key once: kafka-python's murmur2 is pure Python,
    and every order sends its key four times or so."""

    def __init__(self) -> None:
        self._hash = lru_cache(maxsize=_KEY_HASHES_KEPT)(murmur2)

    def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
        partitions = cluster.partitions_for_topic(topic)
        if serialized_key is None or not partitions:
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        return sorted(partitions)[(self._hash(serialized_key) & 0x7FFFFFFF) % len(partitions)]


def make_producer(settings: Settings) -> KafkaProducer:
    # acks=all + idempotence: a retried send is never written twice; large batches for speed.
    return KafkaProducer(
        **client_config(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=2 * 1024 * 1024,
        partitioner=KeyHashPartitioner(),
    )


class Pacer:
    """Sleeps so that event time advances ``speed`` times faster than wall time."""

    def __init__(self, speed: float | None):
        self.speed = speed
        self.origin: tuple[datetime, float] | None = None

    def wait_for(self, event_time: str) -> None:
        if not self.speed:
            return
        t = datetime.fromisoformat(event_time)
        if self.origin is None:
            self.origin = (t, time.monotonic())
            return
        due = self.origin[1] + (t - self.origin[0]).total_seconds() / self.speed
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


# Progress is told in steps of this many events (tqdm's update costs as much as a send).
PROGRESS_STEP = 1_000


def replay(
    events: Iterable[dict],
    *,
    settings: Settings,
    topic: str,
    speed: float | None = None,
    limit: int | None = None,
    progress=None,
) -> ReplayStats:
    """Send ``events`` in order; raises if any send failed after flushing (no lost sends)."""
    producer = make_producer(settings)
    pacer = Pacer(speed)
    failures: list[BaseException] = []
    stats = ReplayStats()
    started = time.monotonic()
    send, failed = producer.send, failures.append
    sent = 0
    try:
        for event in islice(events, limit):
            if speed:
                pacer.wait_for(event["event_time"])
            send(topic, key=event_key(event), value=encode_event(event)).add_errback(failed)
            sent += 1
            if not sent % PROGRESS_STEP:
                if progress is not None:
                    progress.update(PROGRESS_STEP)
                if failures:
                    break
        producer.flush()
    finally:
        producer.close()
        stats.events = sent
        if progress is not None:
            progress.update(sent % PROGRESS_STEP)
    stats.seconds = time.monotonic() - started
    if failures:
        raise ReplayError(f"{len(failures)} send(s) failed, first: {failures[0]!r}")
    return stats


class ReplayError(RuntimeError):
    """At least one event was not acknowledged by Kafka."""
