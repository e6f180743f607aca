"""Dagster code location: the Olist asset graph from Kafka topic to dbt marts."""
