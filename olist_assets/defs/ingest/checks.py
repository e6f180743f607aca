"""Checks on `raw_orders`: new dead letters, and offsets reconciled with rows and with Kafka's
log. (Freshness is the asset's FreshnessPolicy, evaluated by the daemon.)"""

import dagster as dg
from psycopg import sql

from kafka_io.audit import read_kafka_log, reconcile_offsets
from olist_assets.defs.ingest.assets import RAW_ORDERS_KEY, raw_orders
from olist_assets.lib.resources import OlistIngestResource


@dg.asset_check(
    asset=raw_orders,
    name="no_new_dead_letters",
    description="The latest ingestion run wrote no dead letters (poison messages).",
)
def raw_orders_dead_letters(
    context: dg.AssetCheckExecutionContext, ingest: OlistIngestResource
) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(RAW_ORDERS_KEY)
    materialization = event.asset_materialization if event else None
    new = materialization.metadata["dead_letters"].value if materialization else 0
    s = ingest.settings()
    with ingest.connect() as conn:
        rows = conn.execute(
            sql.SQL(
                "select split_part(error_reason, ':', 1), count(*) from {} group by 1 order by 2 desc"
            ).format(sql.Identifier(s.raw_schema, "raw_orders_rejected"))
        ).fetchall()
    return dg.AssetCheckResult(
        passed=new == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "dead_letters_last_run": new,
            "dead_letters_total": sum(n for _, n in rows),
            "by_reason": dg.MetadataValue.json(dict(rows)),
        },
    )


@dg.asset_check(
    asset=raw_orders,
    name="offsets_reconcile",
    description=(
        "Per partition, offsets consumed = inserted + duplicates + rejected, the counts "
        "match the rows in raw_orders and raw_orders_rejected, and the stored offsets still "
        "fit Kafka's log (same topic id, between its start and end). Blocking: the dbt models "
        "do not build over rows whose accounting is off."
    ),
    blocking=True,
)
def raw_orders_offsets_reconcile(ingest: OlistIngestResource) -> dg.AssetCheckResult:
    s = ingest.settings()
    kafka = read_kafka_log(s.kafka_bootstrap, s.kafka_topic)
    with ingest.connect() as conn:
        report = reconcile_offsets(conn, s.raw_schema, s.kafka_topic, kafka)
    bad = [r["partition"] for r in report if not r["ok"]]
    return dg.AssetCheckResult(
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "partitions": len(report),
            "mismatched_partitions": dg.MetadataValue.json(bad),
            "report": dg.MetadataValue.json(report),
        },
    )
