"""In-process Dagster runs on a small replay: the graph materializes with passing checks, the lag
sensor asks for exactly the lagging offsets once, and a failing dbt test is a failed check."""

from __future__ import annotations

import base64
import threading
import time
from xml.etree import ElementTree

import dagster as dg
import psycopg
from psycopg import sql

from kafka_io.settings import get_settings
from kafka_io.synthetic import synthetic_events
from olist_assets.definitions import defs as load_defs
from olist_assets.defs.dbt.assets import olist_dbt_models
from olist_assets.defs.ingest.assets import olist_orders_topic, raw_orders
from olist_assets.defs.ingest.checks import raw_orders_dead_letters, raw_orders_offsets_reconcile
from olist_assets.defs.ingest.sensors import kafka_lag_sensor
from olist_assets.lib.dbt_resource import dbt_resource
from olist_assets.lib.resources import OlistIngestResource
from tests.conftest import admin_connect
from tests.kafka_io.ingest_helpers import end_offsets, produce_events

ASSETS = [
    olist_orders_topic,
    raw_orders,
    raw_orders_dead_letters,
    raw_orders_offsets_reconcile,
    olist_dbt_models,
]


def resources(pipeline) -> dict:
    return {
        "ingest": OlistIngestResource(
            topic=pipeline.topic, group=pipeline.group, raw_schema=pipeline.raw_schema
        ),
        "dbt": dbt_resource(),
    }


def mart_value(settings, pipeline, query: str) -> tuple:
    with psycopg.connect(settings.dbt_pg_dsn) as conn:
        return conn.execute(
            sql.SQL(query).format(schema=sql.Identifier(pipeline.analytics))
        ).fetchone()


def test_graph_materializes_on_a_small_replay(settings, pipeline):
    events = list(synthetic_events(200, seed=11))
    produce_events(settings, pipeline.topic, events)
    orders = {e["order"]["order_id"] for e in events}

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(ASSETS, resources=resources(pipeline), instance=instance)
        # Everything the run logged or recorded (messages, metadata, dbt's lines), as text.
        logged = "\n".join(repr(record) for record in instance.all_logs(result.run_id))

    assert result.success
    secrets = [
        value.get_secret_value()
        for name, value in settings
        if name.endswith("password")
        and value is not None
        # A stack made before passwords were generated keeps its old ones, the role names,
        # which the log names anyway; a fresh stack's are random.
        and value.get_secret_value() not in settings.login_roles()
    ]
    assert secrets and len(logged) > 10_000
    assert [s for s in secrets if s in logged] == [], "a password is in the run's event log"
    raw = result.asset_materializations_for_node("raw_orders")[0].metadata
    assert raw["events_ingested"].value == len(events)
    assert raw["dead_letters"].value == 0
    assert raw["lag_after_run"].value == 0
    ranges = raw["offset_ranges"].value
    assert sum(r["count"] for r in ranges.values()) == len(events)
    checks = result.get_asset_check_evaluations()
    assert {c.asset_key.to_user_string() for c in checks} >= {
        "raw_orders", "stg_orders", "fact_orders", "dim_customers", "agg_daily_revenue",
    }  # fmt: skip
    assert [c.check_name for c in checks if not c.passed] == []
    assert mart_value(settings, pipeline, "select count(*) from {schema}.fact_orders") == (
        len(orders),
    )
    assert mart_value(
        settings, pipeline, "select sum(order_count) from {schema}.agg_daily_revenue"
    ) == (len(orders),)
    agg = [
        m for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey("agg_daily_revenue")
    ][0].materialization.metadata  # fmt: skip
    top = [r.data for r in agg["top_states_by_revenue"].records]
    # The table equals SQL over the mart: the first state's revenue orders and revenue.
    (state, orders_, revenue) = mart_value(
        settings,
        pipeline,
        "select customer_state, sum(revenue_order_count), sum(total_revenue) "
        "from {schema}.agg_daily_revenue group by 1 order by 3 desc limit 1",
    )
    assert (top[0]["state"], top[0]["revenue_orders"]) == (state, orders_)
    assert top[0]["revenue_brl"] == round(float(revenue), 2)
    # The Plots tab's numbers: totals equal SQL over the mart; the first build adds them all.
    (total_revenue,) = mart_value(
        settings, pipeline, "select sum(total_revenue) from {schema}.agg_daily_revenue"
    )
    assert agg["orders_total"].value == agg["orders_added"].value == len(orders)
    assert agg["revenue_total_brl"].value == round(float(total_revenue), 2)
    # The revenue-by-day picture: a markdown image of a parseable SVG polyline.
    picture = agg["revenue_by_day"].value
    assert picture.startswith("![revenue by day") and "](data:image/svg+xml;base64," in picture
    svg = base64.b64decode(picture.split("base64,", 1)[1].rstrip(")"))
    assert ElementTree.fromstring(svg).find("{http://www.w3.org/2000/svg}polyline") is not None


def test_lag_sensor_requests_the_lagging_offsets_once(settings, pipeline):
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources(pipeline))
        assert isinstance(kafka_lag_sensor(context), dg.SkipReason)  # empty topic: no lag

        events = list(synthetic_events(50, seed=12))
        produce_events(settings, pipeline.topic, events)
        ends = end_offsets(settings, pipeline.topic)
        result = kafka_lag_sensor(
            dg.build_sensor_context(instance=instance, resources=resources(pipeline))
        )
        (request,) = result.run_requests
        spans = sorted(request.run_key.split("|")[1].split(","))
        assert spans == sorted(f"{p}:0-{end}" for p, end in ends.items() if end)
        stop_at = request.run_config["ops"]["raw_orders"]["config"]["stop_at"]
        assert stop_at == {str(p): end for p, end in ends.items()}

        # The run it asks for drains exactly those offsets; then the sensor goes quiet.
        run = dg.materialize(
            [olist_orders_topic, raw_orders], resources=resources(pipeline), instance=instance,
            run_config=request.run_config,
        )  # fmt: skip
        assert run.success
        again = kafka_lag_sensor(
            dg.build_sensor_context(instance=instance, resources=resources(pipeline))
        )
        assert isinstance(again, dg.SkipReason) and "no lag" in again.skip_message


def test_lag_sensor_watches_its_tick_and_requests_lag_as_it_appears(
    settings, pipeline, monkeypatch
):
    # A tick waits up to OLIST_LAG_SENSOR_WAIT_SECONDS for lag: events produced 1 s into it
    # get their run request then, not at the sensor daemon's next tick.
    monkeypatch.setenv("OLIST_LAG_SENSOR_WAIT_SECONDS", "10")
    get_settings.cache_clear()
    events = list(synthetic_events(5, seed=14))
    producer = threading.Timer(1.0, produce_events, (settings, pipeline.topic, events))
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources(pipeline))
        started = time.monotonic()
        producer.start()
        result = kafka_lag_sensor(context)
        elapsed = time.monotonic() - started
    producer.join()
    (request,) = result.run_requests
    assert 1.0 <= elapsed < 6, elapsed  # at the lag, well before the 10 s were up
    stop_at = request.run_config["ops"]["raw_orders"]["config"]["stop_at"]
    assert sum(stop_at.values()) == len(events)
    # With no lag it watches the whole wait, then skips saying so.
    monkeypatch.setenv("OLIST_LAG_SENSOR_WAIT_SECONDS", "1.5")
    get_settings.cache_clear()
    drained = dg.materialize(
        [olist_orders_topic, raw_orders], resources=resources(pipeline),
        run_config=request.run_config,
    )  # fmt: skip
    assert drained.success
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources(pipeline))
        started = time.monotonic()
        skipped = kafka_lag_sensor(context)
    assert isinstance(skipped, dg.SkipReason) and "watched 1.5 s" in skipped.skip_message
    assert time.monotonic() - started >= 1.5


def test_failing_dbt_test_is_a_failed_check_and_the_sensor_does_not_loop(settings, pipeline):
    events = list(synthetic_events(30, seed=13))
    produce_events(settings, pipeline.topic, events)
    with dg.DagsterInstance.ephemeral() as instance:
        first = kafka_lag_sensor(
            dg.build_sensor_context(instance=instance, resources=resources(pipeline))
        )
        (request,) = first.run_requests
        dg.materialize(
            [olist_orders_topic, raw_orders], resources=resources(pipeline), instance=instance,
            run_config=request.run_config,
        )  # fmt: skip
        # Corrupt one order's stored events behind ingestion's back: its last event's sequence
        # jumps, so the order's events have a gap (no constraint refuses that; the test warns).
        with admin_connect(settings) as conn:
            conn.execute(
                sql.SQL(
                    "update {} set sequence = sequence + 10 where order_id = %s and sequence = "
                    "(select max(sequence) from {} where order_id = %s)"
                ).format(*[sql.Identifier(pipeline.raw_schema, "raw_orders")] * 2),
                [events[0]["order"]["order_id"]] * 2,
            )
        result = dg.materialize(
            [olist_orders_topic, raw_orders, olist_dbt_models], resources=resources(pipeline),
            instance=instance, selection=[olist_dbt_models], raise_on_error=False,
        )  # fmt: skip
        failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
        assert [c.check_name for c in failed] == [
            "expression_is_true_int_orders_latest_latest_sequence___event_count"
        ]
        assert failed[0].severity == dg.AssetCheckSeverity.WARN
        # Offsets moved past the run's range, so the sensor does not request it again.
        after = kafka_lag_sensor(
            dg.build_sensor_context(instance=instance, resources=resources(pipeline))
        )
        assert isinstance(after, dg.SkipReason)


def test_lag_sensor_names_what_its_run_builds(settings, pipeline):
    # Declarative automation ignores a dependency's update only if the run that made it also
    # targeted the model: a run with no recorded selection looks like raw_orders alone, and
    # a tick that straddles its end requested a second dbt build of the same models.
    definitions = load_defs()
    graph = definitions.resolve_asset_graph()
    produce_events(settings, pipeline.topic, list(synthetic_events(5, seed=13)))
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(
            instance=instance, resources=resources(pipeline), definitions=definitions
        )
        (request,) = kafka_lag_sensor(context).run_requests
    assets = set(request.asset_selection)
    assert raw_orders.key in assets and set(olist_dbt_models.keys) <= assets
    assert dg.AssetKey("dbt_docs") not in assets and olist_orders_topic.key not in assets
    checks = set(request.asset_check_keys)
    assert checks == {key for key in graph.asset_check_keys if key.asset_key in assets}
    assert raw_orders_dead_letters.check_key in checks
    assert any(key.asset_key == dg.AssetKey("fact_orders") for key in checks)
