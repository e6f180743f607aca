"""The raw schema's tables, created once before ingestion (idempotent), never in the hot path."""

from __future__ import annotations

import psycopg
from psycopg import sql

# Numbered and append-only: a deployed migration is never edited, a new one is added.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        create table if not exists {schema}.raw_orders (
            event_id        text primary key,
            order_id        text not null,
            event_type      text not null,
            event_time      timestamp not null,
            sequence        integer not null,
            payload         jsonb not null,
            kafka_topic     text not null,
            kafka_partition integer not null,
            kafka_offset    bigint not null,
            ingested_at     timestamptz not null default clock_timestamp(),
            constraint raw_orders_kafka_position_key
                unique (kafka_topic, kafka_partition, kafka_offset)
        );
        create index if not exists raw_orders_order_id_idx on {schema}.raw_orders (order_id);
        create index if not exists raw_orders_ingested_at_idx on {schema}.raw_orders (ingested_at);

        create table if not exists {schema}.raw_orders_rejected (
            kafka_topic     text not null,
            kafka_partition integer not null,
            kafka_offset    bigint not null,
            message_key     bytea,
            message_value   bytea,
            error_reason    text not null,
            rejected_at     timestamptz not null default clock_timestamp(),
            primary key (kafka_topic, kafka_partition, kafka_offset)
        );

        -- The source of truth for where each partition resumes: written in the same
        -- transaction as the rows it covers, with cumulative counts that account for every
        -- offset consumed since first_offset (inserted + duplicates + rejected).
        create table if not exists {schema}.consumer_offsets (
            consumer_group  text not null,
            kafka_topic     text not null,
            kafka_partition integer not null,
            first_offset    bigint not null,
            next_offset     bigint not null,
            inserted        bigint not null default 0,
            duplicates      bigint not null default 0,
            rejected        bigint not null default 0,
            updated_at      timestamptz not null default clock_timestamp(),
            primary key (consumer_group, kafka_topic, kafka_partition)
        );
        """,
    ),
    (
        2,
        # Topic epochs: a topic deleted and recreated (same name, new Kafka topic id) restarts
        # its offsets at 0, so offsets alone no longer identify a record. Every row, dead
        # letter and stored offset carries the epoch of the log it came from; epoch 0 is the
        # log ingested before this migration (adopted by the first ingestion that records
        # its topic id). A new epoch starts only through `olist offsets reset`, recorded
        # in offset_resets (who, when, old and new offsets), so accounting stays explainable.
        """
        alter table {schema}.raw_orders
            add column kafka_epoch integer not null default 0,
            drop constraint raw_orders_kafka_position_key,
            add constraint raw_orders_kafka_position_key
                unique (kafka_topic, kafka_epoch, kafka_partition, kafka_offset);
        alter table {schema}.raw_orders_rejected
            add column kafka_epoch integer not null default 0,
            drop constraint raw_orders_rejected_pkey,
            add primary key (kafka_topic, kafka_epoch, kafka_partition, kafka_offset);
        alter table {schema}.consumer_offsets
            add column kafka_epoch integer not null default 0,
            drop constraint consumer_offsets_pkey,
            add primary key (consumer_group, kafka_topic, kafka_epoch, kafka_partition);

        create table {schema}.topic_epochs (
            kafka_topic     text not null,
            kafka_epoch     integer not null,
            topic_id        text,
            reason          text not null,
            recorded_by     text not null default current_user,
            recorded_at     timestamptz not null default clock_timestamp(),
            primary key (kafka_topic, kafka_epoch)
        );

        create table {schema}.offset_resets (
            reset_id        bigint generated always as identity primary key,
            consumer_group  text not null,
            kafka_topic     text not null,
            kafka_partition integer not null,
            old_epoch       integer not null,
            old_next_offset bigint,
            new_epoch       integer not null,
            new_next_offset bigint not null,
            reason          text not null,
            reset_by        text not null,
            reset_at        timestamptz not null default clock_timestamp()
        );
        """,
    ),
]


def check_schema(conn: psycopg.Connection, schema: str) -> str | None:
    """Why ingestion cannot use ``schema`` (missing, or no USAGE and CREATE for this role), or
    None. Checked first, so the operator reads one line instead of a failed CREATE TABLE."""
    row = conn.execute(
        "select has_schema_privilege(oid, 'USAGE'), has_schema_privilege(oid, 'CREATE') "
        "from pg_namespace where nspname = %s",
        [schema],
    ).fetchone()
    if row is None:
        return f"--schema {schema}: no such schema in database {conn.info.dbname}"
    if not all(row):
        return f"--schema {schema}: role {conn.info.user} lacks USAGE and CREATE on it"
    return None


def migrate_dsn(dsn: str, schema: str) -> int:
    """migrate() on a connection of its own; IngestError if the schema is not usable."""
    from kafka_io.errors import IngestError

    with psycopg.connect(dsn, autocommit=True) as conn:
        problem = check_schema(conn, schema)
        if problem is not None:
            raise IngestError(problem)
        return migrate(conn, schema)


def current_epoch(
    conn: psycopg.Connection, schema: str, topic: str, topic_id: str | None
) -> tuple[int, str | None]:
    """The topic's current (latest) epoch and the Kafka topic id recorded for it.

    The first ingestion of a topic records epoch 0 with Kafka's id; rows from before
    migration 2 (epoch 0 with no id) adopt the id of the topic they meet first."""
    epochs = sql.Identifier(schema, "topic_epochs")
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "insert into {} (kafka_topic, kafka_epoch, topic_id, reason) "
                "values (%s, 0, %s, 'first ingestion') on conflict do nothing"
            ).format(epochs),
            [topic, topic_id],
        )
        conn.execute(
            sql.SQL(
                "update {} set topic_id = %s where kafka_topic = %s and kafka_epoch = 0 "
                "and topic_id is null and not exists "
                "(select 1 from {} where kafka_topic = %s and kafka_epoch > 0)"
            ).format(epochs, epochs),
            [topic_id, topic, topic],
        )
        epoch, recorded = conn.execute(
            sql.SQL(
                "select kafka_epoch, topic_id from {} where kafka_topic = %s "
                "order by kafka_epoch desc limit 1"
            ).format(epochs),
            [topic],
        ).fetchone()
    return epoch, recorded


def start_epoch(
    conn: psycopg.Connection,
    schema: str,
    *,
    group: str,
    topic: str,
    topic_id: str | None,
    log_starts: dict[int, int],
    reason: str,
    reset_by: str,
) -> tuple[int, list[tuple[int, int | None, int]]]:
    """The operator's reset: a new epoch of ``topic`` whose offsets start at Kafka's log start,
    recorded with the old offsets of ``group``. Returns the new epoch and, per partition,
    (partition, old next offset or None, new next offset)."""
    ids = {
        "epochs": sql.Identifier(schema, "topic_epochs"),
        "offsets": sql.Identifier(schema, "consumer_offsets"),
        "resets": sql.Identifier(schema, "offset_resets"),
    }
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [f"olist-epoch:{schema}"])
        (old,) = conn.execute(
            sql.SQL(
                "select coalesce(max(kafka_epoch), 0) from {epochs} where kafka_topic = %s"
            ).format(**ids),
            [topic],
        ).fetchone()
        new = old + 1
        conn.execute(
            sql.SQL(
                "insert into {epochs} (kafka_topic, kafka_epoch, topic_id, reason, recorded_by) "
                "values (%s, %s, %s, %s, %s)"
            ).format(**ids),
            [topic, new, topic_id, reason, reset_by],
        )
        stored = dict(
            conn.execute(
                sql.SQL(
                    "select kafka_partition, next_offset from {offsets} "
                    "where consumer_group = %s and kafka_topic = %s and kafka_epoch = %s"
                ).format(**ids),
                [group, topic, old],
            ).fetchall()
        )
        changes = [(p, stored.get(p), start) for p, start in sorted(log_starts.items())]
        for partition, old_next, start in changes:
            conn.execute(
                sql.SQL(
                    "insert into {resets} (consumer_group, kafka_topic, kafka_partition, "
                    "old_epoch, old_next_offset, new_epoch, new_next_offset, reason, reset_by) "
                    "values (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                ).format(**ids),
                [group, topic, partition, old, old_next, new, start, reason, reset_by],
            )
            # The new epoch's accounting starts at the log start with nothing consumed yet.
            conn.execute(
                sql.SQL(
                    "insert into {offsets} (consumer_group, kafka_topic, kafka_epoch, "
                    "kafka_partition, first_offset, next_offset) values (%s, %s, %s, %s, %s, %s)"
                ).format(**ids),
                [group, topic, new, partition, start, start],
            )
    return new, changes


def migrate(conn: psycopg.Connection, schema: str) -> int:
    """Apply the migrations missing from ``schema``; returns the schema's version afterwards."""
    ident = sql.Identifier(schema)
    with conn.transaction():
        # One migrator at a time, whatever the number of consumers starting together.
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [f"olist-migrate:{schema}"])
        conn.execute(
            sql.SQL(
                "create table if not exists {}.schema_migrations "
                "(version integer primary key, applied_at timestamptz not null default now())"
            ).format(ident)
        )
        done = {
            row[0]
            for row in conn.execute(
                sql.SQL("select version from {}.schema_migrations").format(ident)
            )
        }
        for version, statements in MIGRATIONS:
            if version in done:
                continue
            conn.execute(sql.SQL(statements).format(schema=ident))
            conn.execute(
                sql.SQL("insert into {}.schema_migrations (version) values (%s)").format(ident),
                [version],
            )
    return max(v for v, _ in MIGRATIONS)
