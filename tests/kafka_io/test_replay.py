"""`replay` on the local broker: every event arrives once, keyed by order_id in the partition the
default (murmur2) partitioner picks, each partition in event-time order, byte for byte what
`encode_event` writes; a send the broker refuses fails the replay (raises)."""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError
from kafka.partitioner import murmur2

from kafka_io.contract import encode_event, event_key
from kafka_io.kafka_client import client_config
from kafka_io.producer import PROGRESS_STEP, ReplayError, replay
from kafka_io.synthetic import synthetic_events


class Progress:
    def __init__(self) -> None:
        self.total = 0

    def update(self, n: int) -> None:
        self.total += n


def read_all(settings, topic: str, partitions: int, expected: int) -> dict[int, list]:
    consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    consumer.seek_to_beginning()
    out: dict[int, list] = {p: [] for p in range(partitions)}
    deadline = time.monotonic() + 60
    while sum(map(len, out.values())) < expected and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=1000).items():
            out[tp.partition].extend((r.key, r.value) for r in records)
    consumer.close()
    return out


def test_replay_delivers_every_event_keyed_and_in_order(settings, kafka_topic) -> None:
    events = list(synthetic_events(700, seed=5))
    assert len(events) > PROGRESS_STEP  # progress in steps and the remainder
    progress = Progress()
    stats = replay(iter(events), settings=settings, topic=kafka_topic, progress=progress)
    assert stats.events == progress.total == len(events)
    expected: dict[int, list] = {p: [] for p in range(3)}
    for event in events:
        key = event_key(event)
        expected[(murmur2(key) & 0x7FFFFFFF) % 3].append((key, encode_event(event)))
    assert read_all(settings, kafka_topic, 3, len(events)) == expected


def test_replay_stops_at_the_limit(settings, kafka_topic) -> None:
    stats = replay(synthetic_events(50), settings=settings, topic=kafka_topic, limit=17)
    assert stats.events == 17
    assert sum(map(len, read_all(settings, kafka_topic, 3, 17).values())) == 17


def test_a_send_the_broker_refuses_fails_the_replay(settings) -> None:
    # Events are about 1 kB: a topic taking at most 300 bytes refuses every batch.
    topic = f"t.small.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(**client_config(settings))
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "300"})])
    try:
        # kafka-python's flush itself raises once a fatal error aborted the batches.
        with pytest.raises((ReplayError, KafkaError)):
            replay(synthetic_events(20), settings=settings, topic=topic)
    finally:
        admin.delete_topics([topic])
        admin.close()
