"""The automation sensor, on by default: it evaluates the dbt models' `eager()` conditions
(olist_assets/lib/translator.py), so a manual `raw_orders` materialization flows to the marts."""

import dagster as dg

olist_automation_sensor = dg.AutomationConditionSensorDefinition(
    "olist_automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
)
