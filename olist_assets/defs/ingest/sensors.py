"""Kafka-lag sensor: when the consumer group lags, request one bounded ingestion run.

The run key is the offset ranges (committed → end per partition), so a tick never launches the
same work twice; the run drains exactly up to the end offsets the sensor saw. The dbt models
are in the same run (lowest latency); declarative automation covers manual materializations.
"""

import dagster as dg
from kafka.errors import KafkaError

from kafka_io.lag import group_lag, offset_range_key
from olist_assets.defs.ingest.assets import RAW_ORDERS_KEY, IngestConfig
from olist_assets.lib.resources import OlistIngestResource, ingest_pool

INGEST_RUN_TAG = "olist/ingest"
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
# Everything the new events change; not the docs, nor what Dagster does not materialize (the
# dashboard: an external asset that reads the marts live).
TARGET = (
    dg.AssetSelection.assets(RAW_ORDERS_KEY).downstream() - dg.AssetSelection.groups("docs")
).materializable()


def pool_holders(instance: dg.DagsterInstance, pool: str) -> set[str]:
    """Runs that hold or wait for a slot of ``pool`` (empty where the instance's storage has
    no pools, e.g. an in-memory test instance)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return set()
    info = storage.get_concurrency_info(pool)
    return info.active_run_ids | info.pending_run_ids


def ingestion_in_progress(instance: dg.DagsterInstance, topic: str, group: str) -> str | None:
    """Why a new ingestion run would only wait, or None: one of ours is queued or running, or
    any run (a manual materialization, a job, a retry) holds or waits for the ingestion pool."""
    active = instance.get_run_ids(
        filters=dg.RunsFilter(statuses=ACTIVE, tags={INGEST_RUN_TAG: topic}), limit=1
    )
    if active:
        return f"ingestion run {active[0]} still in progress"
    pool = ingest_pool(topic, group)
    holders = pool_holders(instance, pool)
    if holders:
        return f"run {sorted(holders)[0]} holds or waits for pool {pool}"
    return None


def target_keys(
    context: dg.SensorEvaluationContext,
) -> tuple[list[dg.AssetKey] | None, list[dg.AssetCheckKey] | None]:
    """TARGET's assets and checks, named in the run itself. A run requested with no selection
    runs the target's whole job but records none, so declarative automation cannot tell that
    it built the dbt models too (`eager()` ignores a dependency's update only when the run that
    made it also targeted the model) and, when a tick straddles the run's end, requests a
    second dbt build of what this run just built. None outside a code location (a test's bare
    context), where the request's run_config is what matters."""
    repository = context.repository_def
    if repository is None:
        return None, None
    graph = repository.asset_graph
    assets = sorted(TARGET.resolve(graph), key=lambda k: k.to_user_string())
    checks = sorted(TARGET.resolve_checks(graph), key=lambda k: k.to_user_string())
    return assets, checks


@dg.sensor(
    name="kafka_lag_sensor",
    target=TARGET,
    minimum_interval_seconds=3,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests an ingestion run (raw_orders + dbt models) when the consumer group lags.",
)
def kafka_lag_sensor(
    context: dg.SensorEvaluationContext, ingest: OlistIngestResource
) -> dg.SensorResult | dg.SkipReason:
    s = ingest.settings()
    busy = ingestion_in_progress(context.instance, s.kafka_topic, s.kafka_group)
    if busy:
        return dg.SkipReason(busy)
    try:
        lags = group_lag(
            s, s.kafka_group, s.kafka_topic, timeout_ms=3000, wait_seconds=s.lag_sensor_wait_seconds
        )
    except KafkaError as exc:
        return dg.SkipReason(f"Kafka at {s.kafka_bootstrap} unavailable: {exc}")
    total = sum(p.lag for p in lags)
    if total == 0:
        return dg.SkipReason(
            f"no lag on {s.kafka_topic} for group {s.kafka_group} "
            f"(watched {s.lag_sensor_wait_seconds:g} s)"
        )
    stop_at = {str(p.partition): p.end for p in lags}
    assets, checks = target_keys(context)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=offset_range_key(s.kafka_topic, lags),
                asset_selection=assets,
                asset_check_keys=checks,
                run_config=dg.RunConfig(ops={"raw_orders": IngestConfig(stop_at=stop_at)}),
                tags={INGEST_RUN_TAG: s.kafka_topic, "olist/lag": str(total)},
            )
        ]
    )
