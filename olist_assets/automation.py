"""Declarative automation, on by default: dbt models (and docs) follow raw_orders by themselves."""

import dagster as dg

defs = dg.Definitions(
    sensors=[
        dg.AutomationConditionSensorDefinition(
            "olist_automation_sensor",
            target=dg.AssetSelection.all(),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=10,
        )
    ]
)
