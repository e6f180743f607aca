"""Ingestion: the Kafka topic (external asset), `raw_orders`, its checks and the lag sensor."""
