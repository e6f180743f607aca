"""Declarative automation: dbt models (and docs) follow raw_orders by themselves."""
