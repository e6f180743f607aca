"""Ingestion: the Kafka topic (external asset), `raw_orders`, its checks and the lag sensor."""

import dagster as dg

from olist_assets.ingest.assets import olist_orders_topic, raw_orders
from olist_assets.ingest.checks import raw_orders_checks
from olist_assets.ingest.sensors import kafka_lag_sensor

defs = dg.Definitions(
    assets=[olist_orders_topic, raw_orders],
    asset_checks=raw_orders_checks,
    sensors=[kafka_lag_sensor],
)
