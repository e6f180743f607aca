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
]


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
