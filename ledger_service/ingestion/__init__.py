"""Kafka ingestion of usage events."""
