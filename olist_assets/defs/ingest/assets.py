"""The Kafka topic as an external asset and `raw_orders`, drained exactly once by kafka_io."""

import dagster as dg
from psycopg import sql

from kafka_io.errors import IngestError
from kafka_io.lag import group_lag
from olist_assets.lib.policies import OWNERS, freshness_policy
from olist_assets.lib.resources import OlistIngestResource, current_ingest_pool

TOPIC_KEY = dg.AssetKey("olist_orders_topic")
RAW_ORDERS_KEY = dg.AssetKey("raw_orders")
INGEST_GROUP = "ingestion"

olist_orders_topic = dg.AssetSpec(
    TOPIC_KEY,
    description=(
        "Kafka topic `olist.orders` (env OLIST_KAFKA_TOPIC): one JSON event per order lifecycle "
        "step, keyed by order_id (DESIGN.md 'Event contract'). Written by `olist replay`."
    ),
    kinds={"kafka"},
    group_name=INGEST_GROUP,
    owners=OWNERS,
)


class IngestConfig(dg.Config):
    """Bounded work: drain each partition up to these end offsets (partition → offset).

    The lag sensor sets them from the offsets it saw; a manual run drains up to the end
    offsets seen when it starts.
    """

    stop_at: dict[str, int] | None = None


def stored_row_count(conn, schema: str) -> int:
    """Rows in raw_orders by the consumer's own accounting: one row per partition and group in
    consumer_offsets, written in the same transaction as the rows (no scan of history)."""
    (rows,) = conn.execute(
        sql.SQL("select coalesce(sum(inserted), 0)::bigint from {}").format(
            sql.Identifier(schema, "consumer_offsets")
        )
    ).fetchone()
    return rows


@dg.asset(
    key=RAW_ORDERS_KEY,
    deps=[olist_orders_topic],
    kinds={"postgres", "python"},
    group_name=INGEST_GROUP,
    description=(
        "raw.raw_orders: one row per accepted event, append-only, written exactly once (offsets "
        "stored in PostgreSQL in the same transaction). Poison messages go to "
        "raw.raw_orders_rejected."
    ),
    owners=OWNERS,
    freshness_policy=freshness_policy(),
    # One ingestion of this topic and group at a time, however the run was started.
    pool=current_ingest_pool(),
)
def raw_orders(
    context: dg.AssetExecutionContext, config: IngestConfig, ingest: OlistIngestResource
) -> dg.MaterializeResult:
    settings = ingest.settings()
    ingestor = ingest.ingestor()
    stop_at = {int(p): o for p, o in config.stop_at.items()} if config.stop_at else None
    try:
        stats = ingestor.run(until_caught_up=True, stop_at=stop_at)
    except IngestError as exc:
        # The one line that names the cause (service and address, or topic and offsets) is
        # the run's failure; a traceback of the retry machinery would only hide it.
        raise dg.Failure(description=str(exc)) from None
    finally:
        ingestor.close()
    context.log.info(
        f"ingested {stats.messages} messages: {stats.inserted} new, "
        f"{stats.duplicates} duplicates, {stats.rejected} dead letters"
    )
    if ingestor.stop:
        # Dagster terminates a run with SIGINT; the Ingestor's handler took it, finished the
        # batch in flight and returned. Hand the interrupt back so the run ends CANCELED
        # instead of succeeding (and its dbt step does not start).
        raise dg.DagsterExecutionInterruptedError(
            f"stopped at a batch boundary after {stats.inserted} new events"
        )
    lag = group_lag(settings, settings.kafka_group, settings.kafka_topic)
    with ingest.connect() as conn:
        rows = stored_row_count(conn, settings.raw_schema)
    return dg.MaterializeResult(
        metadata={
            "events_ingested": stats.inserted,
            "duplicates": stats.duplicates,
            "dead_letters": stats.rejected,
            "messages_consumed": stats.messages,
            "offset_ranges": dg.MetadataValue.json(
                {str(p): r.as_dict() for p, r in sorted(stats.ranges.items())}
            ),
            "lag_after_run": sum(p.lag for p in lag),
            "dagster/row_count": rows,
            "events_per_second": round(stats.events_per_second, 1),
            # The epoch of the topic's log the ranges refer to: offsets_reconcile counts the
            # rows at exactly these offsets (no scan of history).
            "kafka_epoch": ingestor.sink.epoch,
            "topic": settings.kafka_topic,
            "consumer_group": settings.kafka_group,
        }
    )
