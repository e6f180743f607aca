"""Which dataset the demo's warehouse (its Kafka topic, raw schema and marts) holds, so that two
datasets never mix: a one-row marker table in the raw schema, the refusal of a different
dataset, and the explicit reset to empty (`olist demo --reset`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from kafka import KafkaAdminClient
from psycopg import sql

from kafka_io.audit import read_kafka_log
from kafka_io.kafka_client import client_config
from kafka_io.producer import ensure_topic
from kafka_io.settings import Settings

# In the raw schema, owned by the ingestion role like the rows it describes: emptying raw
# (the reset) removes it with them, so the marker and the data it names cannot drift apart.
MARKER_TABLE = "dataset"
_CREATE_MARKER = """
create table if not exists {table} (
    singleton   boolean primary key default true check (singleton),
    dataset     text not null,
    label       text not null,
    recorded_by text not null default current_user,
    recorded_at timestamptz not null default clock_timestamp()
)
"""
# What dbt builds: tables, views, materialized views (and partitioned tables).
_DROP_KEYWORD = {"r": "table", "p": "table", "v": "view", "m": "materialized view"}


class DatasetError(Exception):
    """The demo cannot go on with this dataset; the message is the one line an operator reads."""


@dataclass(frozen=True)
class Dataset:
    key: str  # identity: "olist:<absolute data dir>" or "synthetic:<orders>,<seed>"
    label: str  # what a person reads in the summary and the refusal


def olist_dataset(data_dir: Path) -> Dataset:
    """The real CSVs of ``data_dir``; the same directory however it is spelled."""
    path = Path(data_dir).resolve()
    return Dataset(f"olist:{path}", f"Olist CSVs ({path})")


def synthetic_dataset(orders: int, seed: int) -> Dataset:
    return Dataset(f"synthetic:{orders},{seed}", f"synthetic orders ({orders:,}, seed {seed})")


@dataclass(frozen=True)
class Contents:
    """What the warehouse holds now, by layer."""

    topic_events: int
    raw_events: int
    mart_orders: int

    @property
    def empty(self) -> bool:
        return not (self.topic_events or self.raw_events or self.mart_orders)


def refusal(
    held: Dataset | None, wanted: Dataset, contents: Contents, settings: Settings
) -> str | None:
    """Why the demo of ``wanted`` must not add to this warehouse, in one line, or None when it
    may: the same dataset again (exactly-once makes a re-replay all duplicates), or an empty
    warehouse. Data of no recorded dataset (an older demo, a manual replay) counts as another."""
    if held is not None and held.key == wanted.key:
        return None
    if held is None and contents.empty:
        return None
    what = (
        held.label if held is not None else "an unrecorded dataset " + describe(contents, settings)
    )
    return (
        f"the warehouse holds {what}, not {wanted.label}; add --reset to empty topic "
        f"{settings.kafka_topic}, schema {settings.raw_schema} and the marts "
        f"({settings.analytics_schema}) first"
    )


def describe(contents: Contents, settings: Settings) -> str:
    """``(12 events in topic t, 12 rows in raw.raw_orders, 3 orders in analytics.fact_orders)``"""
    return (
        f"({contents.topic_events:,} events in topic {settings.kafka_topic}, "
        f"{contents.raw_events:,} rows in {settings.raw_schema}.raw_orders, "
        f"{contents.mart_orders:,} orders in {settings.analytics_schema}.fact_orders)"
    )


def marts_line(held: Dataset | None, orders: int, customers: int) -> str:
    """The summary's answer to 'what am I looking at'."""
    label = held.label if held is not None else "an unrecorded dataset"
    return f"marts hold: {label}: {orders:,} orders · {customers:,} customers"


# --- reading the warehouse -------------------------------------------------------------------
def _count_if_exists(dsn: str, schema: str, table: str) -> int:
    """Rows of ``schema.table``, 0 when it (or its schema) does not exist."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        (regclass,) = conn.execute(
            "select to_regclass(%s)", [sql.Identifier(schema, table).as_string(conn)]
        ).fetchone()
        if regclass is None:
            return 0
        query = sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))
        return conn.execute(query).fetchone()[0]


def topic_events(settings: Settings) -> int:
    """Records in the topic's log now; 0 when it does not exist (asked of the admin first: a
    metadata request for a missing topic may create it on a broker that auto-creates)."""
    admin = KafkaAdminClient(**client_config(settings))
    try:
        exists = settings.kafka_topic in admin.list_topics()
    finally:
        admin.close()
    if not exists:
        return 0
    log = read_kafka_log(settings, settings.kafka_topic)
    return sum(end - log.starts.get(p, 0) for p, end in log.ends.items())


def read_contents(settings: Settings) -> Contents:
    return Contents(
        topic_events=topic_events(settings),
        raw_events=_count_if_exists(settings.pg_dsn, settings.raw_schema, "raw_orders"),
        mart_orders=_count_if_exists(settings.dbt_pg_dsn, settings.analytics_schema, "fact_orders"),
    )


def held_dataset(settings: Settings) -> Dataset | None:
    """The dataset the marker names, or None (no marker: empty, or loaded before markers)."""
    table = sql.Identifier(settings.raw_schema, MARKER_TABLE)
    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:
        (regclass,) = conn.execute("select to_regclass(%s)", [table.as_string(conn)]).fetchone()
        if regclass is None:
            return None
        row = conn.execute(sql.SQL("select dataset, label from {}").format(table)).fetchone()
    return Dataset(*row) if row else None


def record_dataset(settings: Settings, dataset: Dataset) -> None:
    """Write the marker (before the first event is sent, so a demo that dies half-way still
    names what it started loading)."""
    table = sql.Identifier(settings.raw_schema, MARKER_TABLE)
    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn, conn.transaction():
        conn.execute(sql.SQL(_CREATE_MARKER).format(table=table))
        conn.execute(
            sql.SQL(
                "insert into {} (dataset, label) values (%s, %s) on conflict (singleton) do "
                "update set dataset = excluded.dataset, label = excluded.label, "
                "recorded_by = current_user, recorded_at = clock_timestamp()"
            ).format(table),
            [dataset.key, dataset.label],
        )


def claim(settings: Settings, wanted: Dataset) -> None:
    """Record ``wanted`` as the warehouse's dataset, or DatasetError (nothing written) when the
    warehouse holds another one."""
    held = held_dataset(settings)
    if held is not None and held.key == wanted.key:
        return
    problem = refusal(held, wanted, read_contents(settings), settings)
    if problem is not None:
        raise DatasetError(problem)
    record_dataset(settings, wanted)


# --- the reset -------------------------------------------------------------------------------
def active_members(settings: Settings) -> int:
    """Members of the ingestion's consumer group now (a running `make dev` ingesting)."""
    admin = KafkaAdminClient(**client_config(settings))
    try:
        described = admin.describe_groups([settings.kafka_group])
    finally:
        admin.close()
    return len(described.get(settings.kafka_group, {}).get("members") or [])


def drop_relations(dsn: str, schemas: list[str], *, cascade: bool) -> int:
    """Drop every table and view in ``schemas`` in one transaction, as their owner; the schemas
    stay, with their owners and default privileges (dbt's, the reader's grants). Returns how
    many were dropped."""
    with psycopg.connect(dsn) as conn, conn.transaction():
        rows = conn.execute(
            "select n.nspname, c.relname, c.relkind from pg_class as c "
            "join pg_namespace as n on n.oid = c.relnamespace "
            "where n.nspname = any(%s) and c.relkind = any(%s) order by c.oid desc",
            [schemas, list(_DROP_KEYWORD)],
        ).fetchall()
        for schema, name, kind in rows:
            conn.execute(
                sql.SQL("drop {} if exists {} {}").format(
                    sql.SQL(_DROP_KEYWORD[kind]),
                    sql.Identifier(schema, name),
                    sql.SQL("cascade" if cascade else "restrict"),
                )
            )
    return len(rows)


def recreate_topic(settings: Settings, timeout: float = 60) -> None:
    """Delete the topic and create it again, empty, with a new topic id."""
    topic = settings.kafka_topic
    deadline = time.monotonic() + timeout
    admin = KafkaAdminClient(**client_config(settings))
    try:
        if topic in admin.list_topics():
            admin.delete_topics([topic], timeout_ms=int(timeout * 1000))
        # The group's offsets committed to Kafka (what lag tooling and the lag sensor read)
        # describe the old log; Kafka drops them with the topic, deleting the group makes sure
        # of it (a missing group is fine).
        admin.delete_groups([settings.kafka_group])
    finally:
        admin.close()
    # Deletion is asynchronous: until it completes, creating answers "already exists".
    while not ensure_topic(settings, topic, settings.kafka_partitions):
        if time.monotonic() > deadline:
            raise DatasetError(f"topic {topic} still exists {timeout:.0f}s after its deletion")
        time.sleep(0.2)


def reset(settings: Settings) -> list[str]:
    """Empty the warehouse: the marts, then raw (rows, dead letters, offsets, epochs, the
    marker), then the topic. Each step is one transaction or one Kafka call and the order keeps
    every half-way state safe: a rerun of the reset finishes it, and a demo without --reset
    refuses what is left (it is of no recorded dataset). Returns what was done, for the user."""
    members = active_members(settings)
    if members:
        raise DatasetError(
            f"consumer group {settings.kafka_group} has {members} active member(s) (is "
            "`make dev` ingesting?): stop it before --reset"
        )
    dbt_schemas = [settings.schema_prefix + layer for layer in ("staging", "analytics")]
    marts = drop_relations(settings.dbt_pg_dsn, dbt_schemas, cascade=True)
    # No CASCADE on raw: a view of another dbt prefix over it stops the reset, named by
    # PostgreSQL, rather than vanishing. The first ingestion re-creates the tables
    # (kafka_io.migrations) and records the new topic's id as epoch 0: a recreated topic after
    # an explicit reset is a fresh start, not an offset mismatch.
    raw = drop_relations(settings.pg_dsn, [settings.raw_schema], cascade=False)
    recreate_topic(settings)
    return [
        f"dropped {marts} dbt relations in {', '.join(dbt_schemas)}",
        f"dropped {raw} tables in {settings.raw_schema} (rows, dead letters, offsets, epochs)",
        f"recreated topic {settings.kafka_topic} ({settings.kafka_partitions} partitions, empty)"
        f" and deleted consumer group {settings.kafka_group}",
    ]
