"""Checks on `raw_orders`: new dead letters, and offsets reconciled with rows and with Kafka's
log. (Freshness is the asset's FreshnessPolicy, evaluated by the daemon.)

Per run both checks read only what the run wrote (its offset ranges, on the tables' unique
indexes), so a batch's cost does not grow with history; the daily `raw_orders_full_reconcile`
job reconciles every partition's whole accounting with the whole tables."""

import dagster as dg
from psycopg import sql

from kafka_io.audit import (
    RunCounts,
    read_kafka_log,
    reconcile_offsets,
    reconcile_run,
    run_accounting_problem,
    topic_id_problem,
)
from olist_assets.defs.ingest.assets import RAW_ORDERS_KEY, raw_orders
from olist_assets.lib.resources import OlistIngestResource


def latest_metadata(context: dg.AssetCheckExecutionContext) -> dict:
    """The metadata values of raw_orders' latest materialization (this run's, in a run that
    materializes it), or {} before the first one."""
    event = context.instance.get_latest_materialization_event(RAW_ORDERS_KEY)
    materialization = event.asset_materialization if event else None
    if materialization is None:
        return {}
    return {k: v.value for k, v in materialization.metadata.items()}


def run_ranges(metadata: dict) -> dict[int, tuple[int, int]]:
    """partition → (first, last) offsets the run consumed, from its `offset_ranges`."""
    return {int(p): (r["first"], r["last"]) for p, r in metadata.get("offset_ranges", {}).items()}


@dg.asset_check(
    asset=raw_orders,
    name="no_new_dead_letters",
    description="The latest ingestion run wrote no dead letters (poison messages).",
)
def raw_orders_dead_letters(
    context: dg.AssetCheckExecutionContext, ingest: OlistIngestResource
) -> dg.AssetCheckResult:
    metadata = latest_metadata(context)
    new = metadata.get("dead_letters", 0)
    s = ingest.settings()
    by_reason: dict[str, int] = {}
    ranges = run_ranges(metadata)
    with ingest.connect() as conn:
        # The run's dead letters by reason, on the table's (topic, epoch, partition, offset)
        # key; the total from the consumer's accounting (no group-by over all dead letters).
        if new and ranges:
            parts = sorted(ranges)
            by_reason = dict(
                conn.execute(
                    sql.SQL(
                        "select split_part(d.error_reason, ':', 1), count(*) from {} as d "
                        "join unnest(%s::integer[], %s::bigint[], %s::bigint[]) as r(p, lo, hi) "
                        "on d.kafka_partition = r.p and d.kafka_offset between r.lo and r.hi "
                        "where d.kafka_topic = %s and d.kafka_epoch = %s "
                        "group by 1 order by 2 desc"
                    ).format(sql.Identifier(s.raw_schema, "raw_orders_rejected")),
                    [
                        parts,
                        [ranges[p][0] for p in parts],
                        [ranges[p][1] for p in parts],
                        s.kafka_topic,
                        metadata.get("kafka_epoch", 0),
                    ],
                ).fetchall()
            )
        (total,) = conn.execute(
            sql.SQL("select coalesce(sum(rejected), 0)::bigint from {}").format(
                sql.Identifier(s.raw_schema, "consumer_offsets")
            )
        ).fetchone()
    return dg.AssetCheckResult(
        passed=new == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "dead_letters_last_run": new,
            "dead_letters_total": total,
            "by_reason": dg.MetadataValue.json(by_reason),
        },
    )


class ReconcileConfig(dg.Config):
    # The daily job sets it: every partition's whole accounting against the whole tables.
    full_history: bool = False


def full_reconcile(ingest: OlistIngestResource, kafka) -> tuple[list[dict], list[int], None]:
    s = ingest.settings()
    with ingest.connect() as conn:
        report = reconcile_offsets(conn, s.raw_schema, s.kafka_topic, kafka)
    return report, [r["partition"] for r in report if not r["ok"]], None


def run_reconcile(
    ingest: OlistIngestResource, kafka, metadata: dict
) -> tuple[list[dict], list[int], str | None]:
    """The latest run's ranges: rows and dead letters at its offsets equal its counts, and the
    stored offsets of the partitions it read still fit Kafka's log."""
    s = ingest.settings()
    epoch = metadata.get("kafka_epoch", 0)
    with ingest.connect() as conn:
        report, sole_group = reconcile_run(
            conn, s.raw_schema, s.kafka_topic, s.kafka_group, epoch, run_ranges(metadata), kafka
        )
        recreated = topic_id_problem(conn, s.raw_schema, s.kafka_topic, epoch, kafka)
    counts = RunCounts(
        metadata.get("events_ingested", 0),
        metadata.get("duplicates", 0),
        metadata.get("dead_letters", 0),
    )
    problem = recreated or run_accounting_problem(report, counts, sole_group)
    bad = [r["partition"] for r in report if r.get("kafka_problem")]
    return report, bad, problem


@dg.asset_check(
    asset=raw_orders,
    name="offsets_reconcile",
    description=(
        "The latest ingestion run's offsets consumed = inserted + duplicates + rejected, the "
        "rows and dead letters at exactly those offsets are the ones it counted, and the "
        "stored offsets still fit Kafka's log (same topic id, between its start and end). "
        "The daily raw_orders_full_reconcile job checks every partition's whole accounting "
        "against the whole tables. Blocking: the dbt models do not build over rows whose "
        "accounting is off."
    ),
    blocking=True,
)
def raw_orders_offsets_reconcile(
    context: dg.AssetCheckExecutionContext, config: ReconcileConfig, ingest: OlistIngestResource
) -> dg.AssetCheckResult:
    s = ingest.settings()
    kafka = read_kafka_log(s, s.kafka_topic)
    if config.full_history:
        report, bad, problem = full_reconcile(ingest, kafka)
    else:
        report, bad, problem = run_reconcile(ingest, kafka, latest_metadata(context))
    return dg.AssetCheckResult(
        passed=not bad and problem is None,
        severity=dg.AssetCheckSeverity.ERROR,
        description=problem,
        metadata={
            "scope": "full history" if config.full_history else "latest run's offsets",
            "partitions": len(report),
            "mismatched_partitions": dg.MetadataValue.json(bad),
            "problem": problem or "",
            "report": dg.MetadataValue.json(report),
        },
    )


raw_orders_full_reconcile_job = dg.define_asset_job(
    "raw_orders_full_reconcile",
    selection=dg.AssetSelection.checks(raw_orders_offsets_reconcile),
    config={"ops": {"raw_orders_offsets_reconcile": {"config": {"full_history": True}}}},
    description="offsets_reconcile over whole tables: every partition's accounting vs its rows.",
)

# Per-run checks read only the run's offsets; once a day the whole accounting is reconciled,
# so a row removed or added outside ingestion is reported.
raw_orders_full_reconcile_schedule = dg.ScheduleDefinition(
    job=raw_orders_full_reconcile_job,
    cron_schedule="20 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
