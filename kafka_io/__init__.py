"""Kafka ⇄ PostgreSQL ingestion for Olist order events: contract, producer, consumer, local stack.

A plain library with a CLI (`olist`); it knows nothing of Dagster.
"""
