"""Reconciliation of Kafka offsets with PostgreSQL rows: every consumed offset is accounted for."""

from __future__ import annotations

import psycopg
from psycopg import sql

# Per partition of a topic: the consumer's own accounting must match the rows in the tables.
_RECONCILE = """
with accounting as (
    select kafka_partition,
           sum(next_offset - first_offset)::bigint as consumed,
           sum(inserted)::bigint as inserted,
           sum(duplicates)::bigint as duplicates,
           sum(rejected)::bigint as rejected
    from {schema}.consumer_offsets
    where kafka_topic = %(topic)s
    group by kafka_partition
),
events as (
    select kafka_partition, count(*) as n from {schema}.raw_orders
    where kafka_topic = %(topic)s group by kafka_partition
),
dead as (
    select kafka_partition, count(*) as n from {schema}.raw_orders_rejected
    where kafka_topic = %(topic)s group by kafka_partition
)
select coalesce(a.kafka_partition, e.kafka_partition, d.kafka_partition) as kafka_partition,
       coalesce(a.consumed, 0), coalesce(a.inserted, 0), coalesce(a.duplicates, 0),
       coalesce(a.rejected, 0), coalesce(e.n, 0), coalesce(d.n, 0)
from accounting as a
full join events as e on e.kafka_partition = a.kafka_partition
full join dead as d on d.kafka_partition = coalesce(a.kafka_partition, e.kafka_partition)
order by 1
"""


def reconcile_offsets(conn: psycopg.Connection, schema: str, topic: str) -> list[dict]:
    """One dict per partition with ``ok`` False where offsets and rows disagree."""
    rows = conn.execute(
        sql.SQL(_RECONCILE).format(schema=sql.Identifier(schema)), {"topic": topic}
    ).fetchall()
    report = []
    for partition, consumed, inserted, duplicates, rejected, event_rows, dead_rows in rows:
        report.append(
            {
                "partition": partition,
                "consumed_offsets": consumed,
                "inserted": inserted,
                "duplicates": duplicates,
                "rejected": rejected,
                "event_rows": event_rows,
                "dead_letter_rows": dead_rows,
                "ok": consumed == inserted + duplicates + rejected
                and inserted == event_rows
                and rejected == dead_rows,
            }
        )
    return report
