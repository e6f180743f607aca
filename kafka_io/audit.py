"""Reconciliation of Kafka offsets with PostgreSQL rows: every consumed offset is accounted for,
and the stored offsets still match Kafka's log (same topic, within its start and end)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from kafka import KafkaConsumer, TopicPartition
from psycopg import sql

from kafka_io.kafka_client import client_config
from kafka_io.settings import Settings

# Per epoch and partition of a topic: the consumers' own accounting (summed over groups, each
# of which counts what it found already stored as duplicates) must match the rows.
_RECONCILE = """
with accounting as (
    select kafka_epoch, kafka_partition,
           sum(next_offset - first_offset)::bigint as consumed,
           sum(inserted)::bigint as inserted,
           sum(duplicates)::bigint as duplicates,
           sum(rejected)::bigint as rejected,
           min(next_offset) as min_next,
           max(next_offset) as max_next
    from {schema}.consumer_offsets
    where kafka_topic = %(topic)s
    group by kafka_epoch, kafka_partition
),
events as (
    select kafka_epoch, kafka_partition, count(*) as n from {schema}.raw_orders
    where kafka_topic = %(topic)s group by kafka_epoch, kafka_partition
),
dead as (
    select kafka_epoch, kafka_partition, count(*) as n from {schema}.raw_orders_rejected
    where kafka_topic = %(topic)s group by kafka_epoch, kafka_partition
),
keys as (
    select kafka_epoch, kafka_partition from accounting
    union select kafka_epoch, kafka_partition from events
    union select kafka_epoch, kafka_partition from dead
)
select k.kafka_epoch, k.kafka_partition,
       coalesce(a.consumed, 0), coalesce(a.inserted, 0), coalesce(a.duplicates, 0),
       coalesce(a.rejected, 0), coalesce(e.n, 0), coalesce(d.n, 0), a.min_next, a.max_next
from keys as k
left join accounting as a using (kafka_epoch, kafka_partition)
left join events as e using (kafka_epoch, kafka_partition)
left join dead as d using (kafka_epoch, kafka_partition)
order by 1, 2
"""

_EPOCH = "select kafka_epoch, topic_id from {schema}.topic_epochs where kafka_topic = %(topic)s"


@dataclass(frozen=True)
class KafkaLog:
    """Kafka's side of a topic now: its id and each partition's offsets [start, end)."""

    topic_id: str | None
    starts: dict[int, int]
    ends: dict[int, int]


def read_kafka_log(settings: Settings, topic: str, timeout_ms: int = 10000) -> KafkaLog:
    """The topic's id and log bounds (no partitions if it does not exist)."""
    from kafka_io.consumer import topic_id

    consumer = KafkaConsumer(**client_config(settings))
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        starts = consumer.beginning_offsets(tps, timeout_ms=timeout_ms)
        ends = consumer.end_offsets(tps, timeout_ms=timeout_ms)
        return KafkaLog(
            topic_id(consumer, topic),
            {tp.partition: o for tp, o in starts.items()},
            {tp.partition: o for tp, o in ends.items()},
        )
    finally:
        consumer.close()


def log_problem(
    partition: int, min_next: int | None, max_next: int | None, log: KafkaLog
) -> str | None:
    """Why the stored next offsets of the current epoch do not fit Kafka's log, or None."""
    if partition not in log.ends:
        return f"partition {partition} is not in Kafka's topic"
    if max_next is not None and max_next > log.ends[partition]:
        return f"stored next_offset {max_next} past Kafka's log end {log.ends[partition]}"
    if min_next is not None and min_next < log.starts[partition]:
        return f"stored next_offset {min_next} before Kafka's log start {log.starts[partition]}"
    return None


def reconcile_offsets(
    conn: psycopg.Connection, schema: str, topic: str, kafka: KafkaLog | None = None
) -> list[dict]:
    """One dict per (epoch, partition) with ``ok`` False where offsets and rows disagree, or,
    given ``kafka``, where the current epoch's offsets or topic id do not match Kafka's log."""
    ident = sql.Identifier(schema)
    params = {"topic": topic}
    rows = conn.execute(sql.SQL(_RECONCILE).format(schema=ident), params).fetchall()
    epochs = dict(conn.execute(sql.SQL(_EPOCH).format(schema=ident), params).fetchall())
    current = max(epochs, default=0)
    report = []
    for epoch, partition, consumed, inserted, dups, rejected, event_rows, dead_rows, lo, hi in rows:
        entry = {
            "epoch": epoch,
            "partition": partition,
            "consumed_offsets": consumed,
            "inserted": inserted,
            "duplicates": dups,
            "rejected": rejected,
            "event_rows": event_rows,
            "dead_letter_rows": dead_rows,
            "ok": consumed == inserted + dups + rejected
            and inserted == event_rows
            and rejected == dead_rows,
        }
        if kafka is not None and epoch == current:
            problem = log_problem(partition, lo, hi, kafka)
            recorded = epochs.get(epoch)
            if (
                problem is None
                and None not in (recorded, kafka.topic_id)
                and (recorded != kafka.topic_id)
            ):
                problem = f"topic recreated: Kafka's id {kafka.topic_id}, stored {recorded}"
            entry["kafka_problem"] = problem
            entry["ok"] = entry["ok"] and problem is None
        report.append(entry)
    return report


# Per partition of one ingestion run: the rows and dead letters at the offsets it consumed,
# counted on their unique (topic, epoch, partition, offset) indexes, so the cost is the run's
# range, not history. Also how many other groups account for this topic and epoch: a second
# group over the same schema finds the first one's rows at the same offsets (its duplicates).
_RUN_RANGES = """
select r.kafka_partition, r.first_offset, r.last_offset,
       (select count(*) from {schema}.raw_orders as o
        where o.kafka_topic = %(topic)s and o.kafka_epoch = %(epoch)s
          and o.kafka_partition = r.kafka_partition
          and o.kafka_offset between r.first_offset and r.last_offset)::bigint,
       (select count(*) from {schema}.raw_orders_rejected as d
        where d.kafka_topic = %(topic)s and d.kafka_epoch = %(epoch)s
          and d.kafka_partition = r.kafka_partition
          and d.kafka_offset between r.first_offset and r.last_offset)::bigint,
       (select min(c.next_offset) from {schema}.consumer_offsets as c
        where c.kafka_topic = %(topic)s and c.kafka_epoch = %(epoch)s
          and c.kafka_partition = r.kafka_partition),
       (select max(c.next_offset) from {schema}.consumer_offsets as c
        where c.kafka_topic = %(topic)s and c.kafka_epoch = %(epoch)s
          and c.kafka_partition = r.kafka_partition)
from unnest(%(partitions)s::integer[], %(firsts)s::bigint[], %(lasts)s::bigint[])
    as r(kafka_partition, first_offset, last_offset)
order by 1
"""

_OTHER_GROUPS = """
select count(distinct consumer_group) from {schema}.consumer_offsets
where kafka_topic = %(topic)s and kafka_epoch = %(epoch)s and consumer_group <> %(group)s
"""


@dataclass(frozen=True)
class RunCounts:
    """What one ingestion run says it did (its materialization's metadata)."""

    inserted: int
    duplicates: int
    rejected: int


def run_accounting_problem(
    report: list[dict], counts: RunCounts, sole_group: bool = True
) -> str | None:
    """Why the rows at a run's offsets disagree with the run's own counts, or None.

    Alone on its schema, a consumer's inserted events are exactly the rows at its offsets and
    its rejected ones the dead letters there. Beside another group, rows that group stored at
    the same offsets count as this run's duplicates, so only bounds hold."""
    consumed = sum(r["consumed_offsets"] for r in report)
    rows = sum(r["event_rows"] for r in report)
    dead = sum(r["dead_letter_rows"] for r in report)
    if consumed != counts.inserted + counts.duplicates + counts.rejected:
        return (
            f"{consumed} offsets consumed, but inserted + duplicates + rejected = "
            f"{counts.inserted + counts.duplicates + counts.rejected}"
        )
    if sole_group and (rows, dead) != (counts.inserted, counts.rejected):
        return (
            f"the run's offsets hold {rows} rows and {dead} dead letters; "
            f"it reported {counts.inserted} inserted and {counts.rejected} rejected"
        )
    if not sole_group and not (rows >= counts.inserted and dead >= counts.rejected):
        return (
            f"the run's offsets hold {rows} rows and {dead} dead letters, fewer than the "
            f"{counts.inserted} inserted and {counts.rejected} rejected it reported"
        )
    return None


def reconcile_run(
    conn: psycopg.Connection,
    schema: str,
    topic: str,
    group: str,
    epoch: int,
    ranges: dict[int, tuple[int, int]],
    kafka: KafkaLog | None = None,
) -> tuple[list[dict], bool]:
    """Per partition of one run's offset ranges (partition → (first, last), inclusive): the
    offsets consumed, the rows and dead letters stored at them and, given ``kafka``, whether
    the stored next offsets fit Kafka's log; and whether this group is the only one that
    accounts for the topic's epoch. Reads the run's ranges only (no scan of history)."""
    ident = sql.Identifier(schema)
    parts = sorted(ranges)
    params = {
        "topic": topic,
        "epoch": epoch,
        "group": group,
        "partitions": parts,
        "firsts": [ranges[p][0] for p in parts],
        "lasts": [ranges[p][1] for p in parts],
    }
    rows = conn.execute(sql.SQL(_RUN_RANGES).format(schema=ident), params).fetchall()
    (others,) = conn.execute(sql.SQL(_OTHER_GROUPS).format(schema=ident), params).fetchone()
    report = []
    for partition, first, last, event_rows, dead_rows, lo, hi in rows:
        entry = {
            "epoch": epoch,
            "partition": partition,
            "first_offset": first,
            "last_offset": last,
            "consumed_offsets": last - first + 1,
            "event_rows": event_rows,
            "dead_letter_rows": dead_rows,
        }
        if kafka is not None:
            entry["kafka_problem"] = log_problem(partition, lo, hi, kafka)
        report.append(entry)
    return report, others == 0


def topic_id_problem(conn: psycopg.Connection, schema: str, topic: str, epoch: int,
                     kafka: KafkaLog) -> str | None:  # fmt: skip
    """Why ``epoch``'s recorded topic id is not Kafka's (the topic was recreated), or None."""
    row = conn.execute(
        sql.SQL("select topic_id from {} where kafka_topic = %s and kafka_epoch = %s").format(
            sql.Identifier(schema, "topic_epochs")
        ),
        [topic, epoch],
    ).fetchone()
    recorded = row[0] if row else None
    if None in (recorded, kafka.topic_id) or recorded == kafka.topic_id:
        return None
    return f"topic recreated: Kafka's id {kafka.topic_id}, stored {recorded}"
