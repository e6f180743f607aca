"""Exactly-once ingestion: Kafka batches into PostgreSQL with their offsets in ONE transaction.

The offsets stored in PostgreSQL are the source of truth: on (re)assignment each partition seeks
to its stored offset, and a batch only writes records at or after it (a fencing check under a
row lock), so crashes, restarts, rebalances and several consumers never duplicate or skip an
event. Offsets are also committed to Kafka after the database commit, for standard lag tooling.
"""

from __future__ import annotations

import getpass
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from tenacity import Retrying, retry_if_exception, stop_after_delay, stop_never, wait_exponential

from kafka_io.contract import DB_REJECTED, Rejection, parse_event
from kafka_io.errors import IngestError, OffsetMismatchError, ServiceUnavailableError, one_line
from kafka_io.kafka_client import client_config
from kafka_io.migrations import current_epoch, migrate_dsn, start_epoch
from kafka_io.settings import Settings

log = logging.getLogger(__name__)

# raw_orders' columns that ingestion writes (ingested_at is the database's clock).
EVENT_COLUMNS = (
    "event_id, order_id, event_type, event_time, sequence, payload, "
    "kafka_topic, kafka_epoch, kafka_partition, kafka_offset"
)
DEAD_LETTER_COLUMNS = (
    "kafka_topic, kafka_epoch, kafka_partition, kafka_offset, message_key, message_value, "
    "error_reason"
)


@dataclass
class PartitionRange:
    first: int
    last: int

    def as_dict(self) -> dict[str, int]:
        return {"first": self.first, "last": self.last, "count": self.last - self.first + 1}


@dataclass
class IngestStats:
    """What one ingest run did; `duplicates` are valid events already in raw_orders."""

    messages: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    seconds: float = 0.0
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    ranges: dict[int, PartitionRange] = field(default_factory=dict)

    def add_range(self, partition: int, first: int, last: int) -> None:
        known = self.ranges.get(partition)
        if known is None:
            self.ranges[partition] = PartitionRange(first, last)
        else:
            known.first, known.last = min(known.first, first), max(known.last, last)

    @property
    def events_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid event as one line of COPY text, ready for raw_orders (EVENT_COLUMNS)."""

    partition: int
    offset: int
    line: bytes


# COPY's text format: tab-separated columns, one row per line, backslash escapes.
_COPY_ESCAPES = ((b"\\", b"\\\\"), (b"\t", b"\\t"), (b"\n", b"\\n"), (b"\r", b"\\r"))


def copy_text(value: bytes) -> bytes:
    """``value`` escaped as one column of COPY text (JSON may hold backslashes and, between
    tokens, tabs and newlines)."""
    for raw, escaped in _COPY_ESCAPES:
        if raw in value:
            value = value.replace(raw, escaped)
    return value


class StopFlag:
    """Set by SIGINT/SIGTERM: the current batch finishes (or rolls back), then we exit."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self, *_: object) -> None:
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    @contextmanager
    def on_signals(self) -> Iterator[StopFlag]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self.set) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class PostgresSink:
    """Writes one batch (events, dead letters, offsets) per transaction, with fencing."""

    def __init__(self, dsn: str, schema: str, group: str, topic: str, epoch: int = 0):
        self.dsn, self.schema, self.group, self.topic = dsn, schema, group, topic
        # Which incarnation of the topic's log the offsets refer to (see migrations: a
        # recreated topic reuses offsets, so rows and offsets carry the epoch).
        self.epoch = epoch
        self.conn: psycopg.Connection | None = None
        s = sql.Identifier(schema)
        self._q_offsets = sql.SQL(
            "select kafka_partition, next_offset from {}.consumer_offsets "
            "where consumer_group = %s and kafka_topic = %s and kafka_epoch = %s"
        ).format(s)
        self._q_lock = sql.SQL(
            "select kafka_partition, next_offset from {}.consumer_offsets "
            "where consumer_group = %s and kafka_topic = %s and kafka_epoch = %s "
            "and kafka_partition = any(%s) for update"
        ).format(s)
        self._q_save = sql.SQL(
            "insert into {}.consumer_offsets as o (consumer_group, kafka_topic, kafka_epoch, "
            "kafka_partition, first_offset, next_offset, inserted, duplicates, rejected) "
            "select %s, %s, %s, unnest(%s::int[]), unnest(%s::bigint[]), unnest(%s::bigint[]), "
            "unnest(%s::bigint[]), unnest(%s::bigint[]), unnest(%s::bigint[]) "
            "on conflict (consumer_group, kafka_topic, kafka_epoch, kafka_partition) do update set "
            "next_offset = excluded.next_offset, inserted = o.inserted + excluded.inserted, "
            "duplicates = o.duplicates + excluded.duplicates, "
            "rejected = o.rejected + excluded.rejected, updated_at = clock_timestamp()"
        ).format(s)
        cols = sql.SQL(EVENT_COLUMNS)
        raw_orders = sql.Identifier(schema, "raw_orders")
        self._q_copy_events = sql.SQL("copy pg_temp.batch_events ({}) from stdin").format(cols)
        self._q_copy_direct = sql.SQL("copy {} ({}) from stdin").format(raw_orders, cols)
        self._q_insert_events = sql.SQL(
            "insert into {} ({cols}) select {cols} from pg_temp.batch_events "
            "on conflict do nothing returning kafka_partition"
        ).format(raw_orders, cols=cols)
        # A dead letter already stored (another group, or a replay) is not written twice: it
        # counts as a duplicate, as a valid event would.
        self._q_insert_rejected = sql.SQL(
            "insert into {}.raw_orders_rejected ({cols}) "
            "select * from unnest(%s::text[], %s::int[], %s::int[], %s::bigint[], %s::bytea[], "
            "%s::bytea[], %s::text[]) on conflict do nothing returning kafka_partition"
        ).format(s, cols=sql.SQL(DEAD_LETTER_COLUMNS))

    def connect(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.conn = psycopg.connect(self.dsn, application_name=f"olist-ingest:{self.group}")
            with self.conn.transaction():
                self.conn.execute(
                    "create temp table if not exists batch_events "
                    "(event_id text, order_id text, event_type text, event_time timestamp, "
                    "sequence int, payload jsonb, kafka_topic text, kafka_epoch int, "
                    "kafka_partition int, kafka_offset bigint) on commit delete rows"
                )
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def stored_offsets(self) -> dict[int, int]:
        conn = self.connect()
        with conn.transaction():
            return dict(
                conn.execute(self._q_offsets, [self.group, self.topic, self.epoch]).fetchall()
            )

    def write_batch(
        self,
        accepted: list[Accepted],
        rejected: list[tuple[int, int, bytes | None, bytes | None, str]],
        next_offsets: dict[int, int],
        first_offsets: dict[int, int],
        records: Sequence[tuple[int, int, bytes | None, bytes | None]] = (),
    ) -> tuple[int, int, int, dict[int, int]]:
        """One transaction: fence, COPY events and dead letters, save offsets.

        Returns (inserted, duplicates, dead letters written, offsets actually stored). Records
        before a partition's stored offset were written by another consumer (a rebalance
        race) and are dropped here, which is what makes several consumers safe. An event that
        PostgreSQL refuses (``records`` give its bytes) becomes a dead letter in the same
        transaction, so exactly-once holds for it too.
        """
        conn = self.connect()
        with conn.transaction():
            stored = dict(
                conn.execute(
                    self._q_lock, [self.group, self.topic, self.epoch, list(next_offsets)]
                ).fetchall()
            )
            floor = {p: stored.get(p, 0) for p in next_offsets}
            for p, first in first_offsets.items():
                if first > floor[p] and p in stored:
                    # Never skip data: a gap means our position is wrong, not the table.
                    raise OffsetGapError(
                        f"{self.topic}[{p}] batch starts at {first}, stored {floor[p]}"
                    )
            events = [a for a in accepted if a.offset >= floor[a.partition]]
            dead = [r for r in rejected if r[1] >= floor[r[0]]]
            received = Counter(a.partition for a in events) + Counter(r[0] for r in dead)
            inserted = Counter()
            if events:
                inserted, refused = self._insert_events(conn, events)
                if refused:
                    dead += db_rejections(refused, records)
            written = self._insert_dead_letters(conn, dead) if dead else Counter()
            saved = {p: max(n, floor[p]) for p, n in next_offsets.items()}
            parts = list(saved)
            conn.execute(
                self._q_save,
                [
                    self.group,
                    self.topic,
                    self.epoch,
                    parts,
                    [floor[p] if p in stored else first_offsets[p] for p in parts],
                    [saved[p] for p in parts],
                    [inserted[p] for p in parts],
                    [received[p] - inserted[p] - written[p] for p in parts],
                    [written[p] for p in parts],
                ],
            )
        total, dead_total = sum(inserted.values()), sum(written.values())
        return total, sum(received.values()) - total - dead_total, dead_total, saved

    def _insert_dead_letters(self, conn: psycopg.Connection, dead: list) -> Counter:
        """Dead letters written per partition (rare: one multi-row INSERT, not COPY)."""
        # Columns as lists (psycopg sends a tuple as a composite, a list as an array).
        columns = [list(c) for c in zip(*dead, strict=True)]  # partition, offset, key, ...
        n = len(dead)
        rows = conn.execute(
            self._q_insert_rejected,
            [[self.topic] * n, [self.epoch] * n, *columns],
        ).fetchall()
        return Counter(row[0] for row in rows)

    def _insert_events(
        self, conn: psycopg.Connection, events: list[Accepted]
    ) -> tuple[Counter, list[tuple[Accepted, str]]]:
        """Rows inserted per partition, and the events PostgreSQL refused with its message.

        Fast path: one COPY straight into raw_orders. A replay (an event_id already there)
        makes it fail; then, under a savepoint rollback, the batch goes through a temp table
        and INSERT ... ON CONFLICT DO NOTHING, which skips them. Only if a record's data is
        refused (see is_record_error) is the batch bisected to find it.
        """
        # parse_batch formatted the lines: one write here, no per-row Python under the GIL.
        data = b"".join(a.line for a in events)
        try:
            with conn.transaction(), conn.cursor() as cur, cur.copy(self._q_copy_direct) as copy:
                copy.write(data)
            return Counter(a.partition for a in events), []
        except psycopg.errors.UniqueViolation:
            pass
        except psycopg.Error as exc:
            if not is_record_error(exc):
                raise
            return self._bisect(conn, events)
        try:
            with conn.transaction():
                return self._insert_skipping_replays(conn, data), []
        except psycopg.Error as exc:
            if not is_record_error(exc):
                raise
        return self._bisect(conn, events)

    def _insert_skipping_replays(self, conn: psycopg.Connection, data: bytes) -> Counter:
        with conn.cursor() as cur:
            # The temp table may hold an earlier chunk of this transaction (bisect).
            cur.execute("truncate pg_temp.batch_events")
            with cur.copy(self._q_copy_events) as copy:
                copy.write(data)
            cur.execute(self._q_insert_events)
            return Counter(row[0] for row in cur.fetchall())

    def _bisect(
        self, conn: psycopg.Connection, events: list[Accepted]
    ) -> tuple[Counter, list[tuple[Accepted, str]]]:
        """Insert what PostgreSQL accepts, each chunk under a savepoint, halving the chunks
        that fail until the refused events are alone (log2(batch) round trips per refusal)."""
        inserted, refused = Counter(), []
        pending = [events]
        while pending:
            chunk = pending.pop()
            try:
                with conn.transaction():
                    inserted += self._insert_skipping_replays(conn, b"".join(a.line for a in chunk))
            except psycopg.Error as exc:
                if not is_record_error(exc):
                    raise
                if len(chunk) == 1:
                    refused.append((chunk[0], one_line(exc.diag.message_primary or exc)))
                else:
                    half = len(chunk) // 2
                    pending += [chunk[half:], chunk[:half]]
        return inserted, refused


def is_record_error(exc: psycopg.Error) -> bool:
    """True when PostgreSQL refused a record's data (class 22 data exceptions, class 23
    integrity violations but the unique violation that a replay causes): the record is a dead
    letter. Anything else (privileges, disk full, a lost connection) is not about a record and
    stops ingestion."""
    state = exc.sqlstate or ""
    return state.startswith("22") or (state.startswith("23") and state != "23505")


def db_rejections(
    refused: list[tuple[Accepted, str]],
    records: Sequence[tuple[int, int, bytes | None, bytes | None]],
) -> list[tuple[int, int, bytes | None, bytes | None, str]]:
    """Dead letters for the events PostgreSQL refused, with the message's original bytes."""
    by_position = {(r[0], r[1]): r for r in records}
    dead = []
    for event, message in refused:
        partition, offset, key, value = by_position[(event.partition, event.offset)]
        log.warning("dead letter %d@%d: %s: %s", partition, offset, DB_REJECTED, message)
        dead.append((partition, offset, key, value, f"{DB_REJECTED}: {message}"))
    return dead


def partition_end_offsets(consumer: KafkaConsumer, topic: str) -> dict[int, int]:
    """Every partition of ``topic`` and its end offset now (none if the topic does not exist)."""
    partitions = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    return {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}


def topic_id(consumer: KafkaConsumer, topic: str) -> str | None:
    """Kafka's id of the topic (KIP-516): a recreated topic gets a new one, same name or not.

    kafka-python keeps it in the consumer's cluster metadata (MetadataResponse v10+), which
    partitions_for_topic has just refreshed."""
    found = consumer._client.cluster.topic_id(topic)
    return str(found) if found is not None else None


@dataclass(frozen=True)
class PartitionLog:
    """What Kafka's log of one partition holds now: offsets [start, end)."""

    start: int
    end: int


def offset_mismatch(stored: int, log: PartitionLog) -> tuple[str, str] | None:
    """(Kafka's side, why) when a stored next offset cannot be resumed from on this log, or
    None when it can.

    Past the end: the log was recreated or truncated (its offsets no longer mean ours). Before
    the start: records we never read were deleted (retention, or a recreated log). Either way
    resuming would skip records in silence, so the caller stops instead."""
    if stored > log.end:
        return f"log end {log.end}", "past the log end: topic recreated or truncated"
    if stored < log.start:
        return f"log start {log.start}", "records before the log start were deleted unread"
    return None


class OffsetGapError(RuntimeError):
    """A batch would leave a hole between the stored offset and its first record."""


def pg_address(dsn: str) -> str:
    """host:port of a libpq DSN (for messages: never the password)."""
    parts = conninfo_to_dict(dsn)
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}"


# SQLSTATEs of a server going away or not accepting connections yet: an outage, worth retrying.
_OUTAGE_STATES = ("57P01", "57P02", "57P03")


def is_outage(exc: BaseException) -> bool:
    """True for a lost or refused connection (retry), False for e.g. a wrong password (stop:
    retrying would not fix it)."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _OUTAGE_STATES


def retrying(dsn: str, budget: float | None, fn, *args, on_retry=None):
    """Call ``fn`` through PostgreSQL outages: backoff and one log line per retry, up to
    ``budget`` seconds (None: forever, for --follow), then ServiceUnavailableError."""
    forever = budget is None

    def before_sleep(state) -> None:
        log.warning(
            "PostgreSQL at %s unavailable (%s); retrying in %.1fs (%s)",
            pg_address(dsn),
            one_line(state.outcome.exception()),
            state.next_action.sleep,
            "forever: --follow" if forever else f"for up to {budget:g}s",
        )
        if on_retry is not None:
            on_retry()

    try:
        for attempt in Retrying(
            retry=retry_if_exception(is_outage),
            wait=wait_exponential(multiplier=0.5, max=10),
            stop=stop_never if forever else stop_after_delay(budget),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt:
                return fn(*args)
    except psycopg.OperationalError as exc:
        if is_outage(exc):
            raise ServiceUnavailableError("PostgreSQL", pg_address(dsn), budget, str(exc)) from exc
        raise
    raise AssertionError("unreachable")


@dataclass
class ParsedBatch:
    """The validation verdicts of one batch: COPY lines for the valid events, reasons for the rest."""

    messages: int
    accepted: list[Accepted]
    rejected: list[tuple[int, str]]  # (index in batch, reason)
    first_offsets: dict[int, int]
    next_offsets: dict[int, int]
    rejected_reasons: dict[str, int]


def parse_batch(
    batch: list[tuple[int, int, bytes | None, bytes | None]], topic: str, epoch: int = 0
) -> ParsedBatch:
    """Validate raw (partition, offset, key, value) records and format the valid ones as COPY
    lines (the writer thread then sends a batch in one write, with no per-row Python)."""
    accepted, rejected, reasons = [], [], Counter()
    topic_column = copy_text(topic.encode("utf-8")) + b"\t%d" % epoch
    first: dict[int, int] = {}
    nxt: dict[int, int] = {}
    for i, (partition, offset, key, value) in enumerate(batch):
        first.setdefault(partition, offset)
        nxt[partition] = offset + 1
        parsed = parse_event(key, value)
        if isinstance(parsed, Rejection):
            log.warning("dead letter %s[%d]@%d: %s", topic, partition, offset, parsed.reason)
            rejected.append((i, parsed.reason))
            reasons[parsed.kind] += 1
        else:
            e = parsed
            # The head columns match the schema's patterns: nothing in them needs escaping.
            head = f"{e.event_id}\t{e.order.order_id}\t{e.event_type}\t{e.event_time}\t{e.sequence}"
            line = b"\t".join(
                (head.encode(), copy_text(value), topic_column, b"%d\t%d\n" % (partition, offset))
            )
            accepted.append(Accepted(partition, offset, line))
    return ParsedBatch(len(batch), accepted, rejected, first, nxt, dict(reasons))


class _SeekToStoredOffsets(ConsumerRebalanceListener):
    def __init__(self, ingestor: Ingestor):
        self.ingestor = ingestor

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        # Finish the batch in flight before the partitions move: the next owner resumes at
        # the offsets it stores.
        self.ingestor.drain()
        # Offsets not mirrored yet are the new owner's to commit now (ours would be older).
        self.ingestor._kafka_pending.clear()
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        # kafka-python logs and swallows a listener's exception: keep it for the loop, which
        # raises it before writing anything polled from the unchecked positions.
        try:
            self.ingestor.seek_to_stored(list(assigned))
        except Exception as exc:
            self.ingestor.fatal = exc


class Ingestor:
    """Consumes the topic in batches and writes them exactly once to PostgreSQL.

    With ``partitions=None`` it subscribes as a member of the consumer group (Kafka spreads the
    partitions over the members and rebalances when one comes or goes); with a list it reads
    exactly those partitions (`kafka_io.workers` gives each of its processes such a share).
    Either way each partition resumes at the offset stored in PostgreSQL.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        topic: str | None = None,
        group: str | None = None,
        schema: str | None = None,
        max_batch: int = 5000,
        poll_timeout_ms: int = 500,
        partitions: Sequence[int] | None = None,
    ):
        self.settings = settings
        self.topic = topic or settings.kafka_topic
        self.group = group or settings.kafka_group
        self.schema = schema or settings.raw_schema
        self.max_batch = max_batch
        self.poll_timeout_ms = poll_timeout_ms
        self.partitions = None if partitions is None else sorted(partitions)
        self.sink = PostgresSink(settings.pg_dsn, self.schema, self.group, self.topic)
        self.consumer: KafkaConsumer | None = None
        self.stop = StopFlag()
        # Pipeline: poll + validate batch N+1 (this thread) while batch N is written (writer
        # thread, which mostly waits on PostgreSQL's COPY).
        self._writer: ThreadPoolExecutor | None = None
        self._writing: tuple[Future, ParsedBatch] | None = None
        self._stats = IngestStats()  # the current run's, also fed by rebalance-time drains
        self.fatal: Exception | None = None  # raised by the loop (set in a rebalance callback)
        self._unverified: dict[TopicPartition, int] = {}  # resumed, not yet checked with Kafka
        self.follow = False  # --follow: outages are waited out forever, not for a budget
        self._kafka_seen = time.monotonic()  # last time the broker answered
        self._kafka_pending: dict[int, int] = {}  # stored, not yet mirrored to Kafka
        self._commit_retry_at = 0.0  # after a failed commit, none before this

    @property
    def pg_budget(self) -> float | None:
        return None if self.follow else self.settings.pg_retry_seconds

    def _retrying(self, fn, *args):
        return retrying(self.settings.pg_dsn, self.pg_budget, fn, *args, on_retry=self.sink.close)

    # --- set-up --------------------------------------------------------------------------
    def _consumer(self) -> KafkaConsumer:
        if self.consumer is None:
            self.consumer = KafkaConsumer(
                **client_config(self.settings),
                group_id=self.group,
                client_id=f"olist-ingest-{self.group}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=self.max_batch,
                fetch_max_bytes=self.settings.kafka_fetch_max_bytes,
                max_partition_fetch_bytes=self.settings.kafka_max_partition_fetch_bytes,
                # A crashed member is noticed in seconds, so a restart resumes quickly.
                session_timeout_ms=6000,
                heartbeat_interval_ms=2000,
            )
            self.sink.epoch = self._resolve_epoch(self.consumer)
            if self.partitions is None:
                self.consumer.subscribe([self.topic], listener=_SeekToStoredOffsets(self))
            else:
                assigned = [TopicPartition(self.topic, p) for p in self.partitions]
                self.consumer.assign(assigned)
                self.seek_to_stored(assigned)
        return self.consumer

    def _resolve_epoch(self, consumer: KafkaConsumer) -> int:
        """The epoch of the topic's log in PostgreSQL; OffsetMismatchError if Kafka's topic is
        not the one the stored offsets refer to (deleted and recreated, even with more records
        than we stored: only the topic id tells)."""
        if not consumer.partitions_for_topic(self.topic):
            raise IngestError(
                f"--topic {self.topic}: no such topic on Kafka at {self.settings.kafka_bootstrap}"
            )
        kafka_id = topic_id(consumer, self.topic)
        epoch, recorded_id = self._retrying(self._current_epoch, kafka_id)
        if kafka_id is not None and recorded_id != kafka_id:
            self.sink.epoch = epoch
            stored = self._retrying(self.sink.stored_offsets)
            ends = partition_end_offsets(consumer, self.topic)
            partition = min(stored or ends)
            raise OffsetMismatchError(
                self.topic,
                partition,
                stored.get(partition, "none"),
                f"log end {ends.get(partition, 0)}",
                f"topic recreated: Kafka's topic id {kafka_id}, stored {recorded_id}",
            )
        return epoch

    def _current_epoch(self, kafka_id: str | None) -> tuple[int, str | None]:
        with psycopg.connect(self.settings.pg_dsn, autocommit=True) as conn:
            return current_epoch(conn, self.schema, self.topic, kafka_id)

    def seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        """Resume every assigned partition at the offset PostgreSQL holds (else the start),
        after checking that Kafka's log still holds it (never skip records in silence)."""
        stored = self._retrying(self.sink.stored_offsets)
        consumer = self._consumer()
        # Checked against Kafka's log by the loop, before anything polled is written: this may
        # run in a rebalance callback, where kafka-python forbids blocking Kafka calls.
        self._unverified.update(
            {tp: stored[tp.partition] for tp in partitions if tp.partition in stored}
        )
        for tp in partitions:
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])
            else:
                consumer.seek_to_beginning(tp)
        log.info(
            "resuming %s at %s",
            self.topic,
            {tp.partition: stored.get(tp.partition, "start") for tp in partitions},
        )

    def _verify_log(self) -> None:
        """OffsetMismatchError if Kafka's log no longer holds a resumed partition's offset."""
        pending, self._unverified = self._unverified, {}
        tps = list(pending)
        timeout = int(self.settings.kafka_retry_seconds * 1000)
        starts = self._consumer().beginning_offsets(tps, timeout_ms=timeout)
        ends = self._consumer().end_offsets(tps, timeout_ms=timeout)
        for tp, stored in pending.items():
            found = offset_mismatch(stored, PartitionLog(starts[tp], ends[tp]))
            if found is not None:
                raise OffsetMismatchError(self.topic, tp.partition, stored, *found)

    # --- the loop ------------------------------------------------------------------------
    def run(
        self,
        *,
        until_caught_up: bool = True,
        stop_at: dict[int, int] | None = None,
        idle_timeout_s: float = 10.0,
    ) -> IngestStats:
        """Ingest until caught up with the end offsets seen at start (or ``stop_at``), or,
        with ``until_caught_up=False``, until SIGINT/SIGTERM.

        Pipelined: while the writer thread writes batch N (one transaction per batch, in order),
        this thread polls and validates batch N+1. At most one batch is in flight; it is always
        finished before a rebalance, a stop or the end, and only then are its offsets mirrored
        to Kafka.
        """
        stats = self._stats = IngestStats()
        started = time.monotonic()
        self.follow = not until_caught_up
        # Signals first: a SIGTERM during start-up must not kill us mid-way either.
        with self.stop.on_signals(), ThreadPoolExecutor(1, "olist-writer") as writer:
            self._writer = writer
            try:
                self._retrying(migrate_dsn, self.settings.pg_dsn, self.schema)
                consumer = self._consumer()
                if until_caught_up and stop_at is None:
                    stop_at = self.end_offsets()
                idle_since = time.monotonic()
                while not self.stop:
                    try:
                        records = consumer.poll(
                            timeout_ms=self.poll_timeout_ms, max_records=self.max_batch
                        )
                    except KafkaError as exc:
                        # A lost broker can surface here too (not only as empty polls): an
                        # outage for the liveness probe's budget, not an immediate failure.
                        log.debug("poll failed: %s", exc)
                        records = {}
                    if self.fatal is not None:
                        raise self.fatal
                    if self._unverified:
                        self._verify_log()
                    batch = self._bounded(records, stop_at)
                    if records:
                        self._kafka_seen = time.monotonic()
                    if batch:
                        self._write(parse_batch(batch, self.topic, self.sink.epoch), batch)
                        idle_since = time.monotonic()
                    else:
                        # Nothing new: flush what is in flight rather than hold it back.
                        self.drain()
                        self._check_kafka()
                    if until_caught_up:
                        if self._caught_up(stop_at):
                            break
                        if (
                            not batch
                            and time.monotonic() - idle_since > idle_timeout_s
                            and consumer.assignment() == set()
                        ):
                            # Another group member holds every partition: nothing left for us.
                            break
                self.drain()
                self._commit_to_kafka({}, force=True)
            except BaseException:
                # Never write a batch after one that failed (that would leave a hole): drop
                # what is not written yet; the offsets in PostgreSQL say where to resume.
                self._writing = None
                raise
        stats.seconds = time.monotonic() - started
        return stats

    def drain(self) -> None:
        """Finish the batch in flight (before a rebalance, a stop or the end)."""
        self._finish_write()

    def _write(self, parsed: ParsedBatch, batch: list) -> None:
        """Hand a validated batch to the writer thread, once the previous write is done."""
        rejected = [(*batch[i][:4], reason) for i, reason in parsed.rejected]
        accepted, parsed.accepted = parsed.accepted, []  # the writer owns them now
        self._finish_write()
        self._writing = (
            self._writer.submit(
                self._retrying, self.sink.write_batch, accepted, rejected,
                parsed.next_offsets, parsed.first_offsets, batch,
            ),
            parsed,
        )  # fmt: skip

    def _finish_write(self) -> None:
        """Wait for the write in flight: account for it and mirror its offsets to Kafka."""
        if self._writing is None:
            return
        future, parsed = self._writing
        self._writing = None
        inserted, duplicates, dead, saved = future.result()  # re-raises the writer's error
        stats = self._stats
        stats.messages += parsed.messages
        stats.inserted += inserted
        stats.duplicates += duplicates
        stats.rejected += dead
        stats.batches += 1
        for kind, n in parsed.rejected_reasons.items():
            stats.rejected_reasons[kind] = stats.rejected_reasons.get(kind, 0) + n
        for p, first in parsed.first_offsets.items():
            stats.add_range(p, first, saved[p] - 1)
        self._commit_to_kafka(saved)

    def end_offsets(self) -> dict[int, int]:
        return partition_end_offsets(self._consumer(), self.topic)

    # Seconds between liveness probes of an idle consumer.
    KAFKA_PROBE_S = 5.0

    def _check_kafka(self) -> None:
        """An empty poll is also what a dead broker looks like (kafka-python reconnects
        forever): probe with a bounded end_offsets, and past kafka_retry_seconds without an
        answer raise ServiceUnavailableError (never with --follow, which only logs)."""
        since = time.monotonic() - self._kafka_seen
        if since < self.KAFKA_PROBE_S:
            return
        tps = [TopicPartition(self.topic, p) for p in self.partitions or [0]]
        try:
            self._consumer().end_offsets(tps, timeout_ms=int(self.KAFKA_PROBE_S * 1000))
        except KafkaError as exc:
            down = time.monotonic() - self._kafka_seen
            budget = self.settings.kafka_retry_seconds
            if not self.follow and down >= budget:
                raise ServiceUnavailableError(
                    "Kafka", self.settings.kafka_bootstrap, budget, f"{type(exc).__name__}"
                ) from exc
            log.warning(
                "Kafka at %s unreachable for %.0fs (%s); retrying (%s)",
                self.settings.kafka_bootstrap,
                down,
                type(exc).__name__,
                "forever: --follow" if self.follow else f"for up to {budget:g}s",
            )
            return
        self._kafka_seen = time.monotonic()

    def _bounded(self, records: dict, stop_at: dict[int, int] | None) -> list:
        """Flatten a poll result, keeping only records before the stop offsets."""
        batch = []
        for tp, messages in records.items():
            limit = None if stop_at is None else stop_at.get(tp.partition, 0)
            batch.extend(
                (m.partition, m.offset, m.key, m.value)
                for m in messages
                if limit is None or m.offset < limit
            )
        return batch

    def _caught_up(self, stop_at: dict[int, int]) -> bool:
        """Every partition we hold is polled up to its stop offset (the batch in flight is
        drained by `run` before it returns)."""
        consumer = self._consumer()
        assigned = consumer.assignment()
        if not assigned:
            return False
        return all(consumer.position(tp) >= stop_at.get(tp.partition, 0) for tp in assigned)

    def _commit_to_kafka(self, saved: dict[int, int], *, force: bool = False) -> None:
        """Mirror the stored offsets to Kafka so its tooling shows the group's lag.

        Bounded: during a broker outage an unbounded commit waits request_timeout_ms (30 s)
        for the group coordinator after EVERY batch, so a consumer draining what it had
        fetched crawls and never reaches the liveness probe. A failed commit is retried only
        after KAFKA_PROBE_S (``force``: now, at the end of a run); its offsets wait in
        ``_kafka_pending`` and go with the next commit."""
        self._kafka_pending.update(saved)
        if not self._kafka_pending or (not force and time.monotonic() < self._commit_retry_at):
            return
        offsets = {
            TopicPartition(self.topic, p): OffsetAndMetadata(n, "", -1)
            for p, n in self._kafka_pending.items()
        }
        try:
            self._consumer().commit(offsets, timeout_ms=int(self.KAFKA_PROBE_S * 1000))
            self._kafka_pending = {}
        except Exception as exc:  # PostgreSQL holds the truth; Kafka's copy may lag a batch.
            self._commit_retry_at = time.monotonic() + self.KAFKA_PROBE_S
            log.warning("Kafka offset commit failed (PostgreSQL has them): %s", exc)

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
            self.consumer = None
        self.sink.close()


def reset_to_log_start(
    settings: Settings, *, topic: str, group: str, schema: str, reason: str
) -> tuple[int, list[tuple[int, int | None, int]]]:
    """`olist offsets reset --to-log-start`: a new epoch of ``topic`` at Kafka's log start,
    recorded with who, when and the old offsets (see migrations.start_epoch)."""
    consumer = KafkaConsumer(**client_config(settings))
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise IngestError(
                f"--topic {topic}: no such topic on Kafka at {settings.kafka_bootstrap}"
            )
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        timeout = int(settings.kafka_retry_seconds * 1000)
        starts = consumer.beginning_offsets(tps, timeout_ms=timeout)
        kafka_id = topic_id(consumer, topic)
    finally:
        consumer.close()
    migrate_dsn(settings.pg_dsn, schema)
    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:
        return start_epoch(
            conn,
            schema,
            group=group,
            topic=topic,
            topic_id=kafka_id,
            log_starts={tp.partition: offset for tp, offset in starts.items()},
            reason=reason,
            reset_by=f"{getpass.getuser()} ({conn.info.user})",
        )
