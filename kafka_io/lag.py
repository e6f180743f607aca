"""A consumer group's lag, read from Kafka's own committed offsets (what standard tooling shows)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec

from kafka_io.kafka_client import client_config
from kafka_io.settings import Settings


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    committed: int  # next offset the group will read (0 when it never committed)
    end: int  # log end offset
    # Kafka's id of the topic (KIP-516): a topic deleted and recreated under the same name
    # starts again at offset 0 with a new id.
    topic_id: str | None = None

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


def group_lag(
    settings: Settings,
    group: str,
    topic: str,
    timeout_ms: int = 5000,
    wait_seconds: float = 0.0,
    poll_seconds: float = 0.25,
) -> list[PartitionLag]:
    """Per-partition lag of ``group`` on ``topic``; bounded by ``timeout_ms`` per request.

    ``wait_seconds`` > 0 makes it a long poll: while the group has no lag, ask again every
    ``poll_seconds`` (one client), and return at the first lag or once ``wait_seconds`` are up.
    """
    admin = KafkaAdminClient(
        **client_config(settings),
        request_timeout_ms=timeout_ms,
        client_id=f"olist-lag-{group}",
    )
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            lags = _group_lag(admin, group, topic, timeout_ms)
            remaining = deadline - time.monotonic()
            if any(p.lag for p in lags) or remaining <= 0:
                return lags
            time.sleep(min(poll_seconds, remaining))
    finally:
        admin.close()


def _group_lag(
    admin: KafkaAdminClient, group: str, topic: str, timeout_ms: int
) -> list[PartitionLag]:
    described = admin.describe_topics([topic])[0]
    partitions = sorted(p["partition_index"] for p in described["partitions"])
    tps = [TopicPartition(topic, p) for p in partitions]
    ends = admin.list_partition_offsets(
        {tp: OffsetSpec.LATEST for tp in tps}, timeout_ms=timeout_ms
    )
    committed = admin.list_group_offsets({group: tps}).get(group, {})
    return [
        PartitionLag(
            tp.partition,
            committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0,
            ends[tp].offset,
            described.get("topic_id"),
        )
        for tp in tps
    ]


def offset_range_key(topic: str, lags: list[PartitionLag]) -> str:
    """A stable key for 'ingest these offset ranges': the same lag never yields two keys, and
    the same ranges of a recreated topic (new id, offsets from 0 again: `olist demo --reset`)
    a new one, so the sensor does not skip them as already launched."""
    spans = ",".join(f"{p.partition}:{p.committed}-{p.end}" for p in lags if p.lag)
    ids = {p.topic_id for p in lags if p.topic_id}
    return f"{topic}@{','.join(sorted(ids))}|{spans}" if ids else f"{topic}|{spans}"
