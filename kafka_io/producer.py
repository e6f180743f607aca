"""Replays order events into Kafka, keyed by order_id, with every send confirmed."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

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


def make_producer(settings: Settings) -> KafkaProducer:
    # acks=all + idempotence: a retried send is never written twice; large batches for speed.
    return KafkaProducer(
        **client_config(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=2 * 1024 * 1024,
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
    try:
        for event in events:
            if limit is not None and stats.events >= limit:
                break
            pacer.wait_for(event["event_time"])
            future = producer.send(topic, key=event_key(event), value=encode_event(event))
            future.add_errback(failures.append)
            stats.events += 1
            if progress is not None:
                progress.update(1)
            if failures:
                break
        producer.flush()
    finally:
        producer.close()
    stats.seconds = time.monotonic() - started
    if failures:
        raise ReplayError(f"{len(failures)} send(s) failed, first: {failures[0]!r}")
    return stats


class ReplayError(RuntimeError):
    """At least one event was not acknowledged by Kafka."""
