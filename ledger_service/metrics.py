"""Prometheus metrics of the service, served at ``GET /metrics``.

Metric objects are plain in-process counters (creating them connects to nothing). Every part of
the service registers its metrics here so the names stay consistent: ``ledger_<area>_<what>``
with units last (``_seconds``, ``_total``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# -- ingestion ------------------------------------------------------------------------------
USAGE_EVENTS = Counter(
    "ledger_usage_events_total",
    "Usage events consumed, by outcome (applied, duplicate, failed_status, dead_lettered).",
    ["outcome"],
)
DEAD_LETTERS = Counter(
    "ledger_usage_dead_letters_total",
    "Usage events sent to the dead-letter topic, by code.",
    ["code"],
)
INGESTION_BATCH_SECONDS = Histogram(
    "ledger_ingestion_batch_seconds",
    "Time to apply one batch (one partition, one poll).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
INGESTION_CONFLICT_RETRIES = Counter(
    "ledger_ingestion_conflict_retries_total",
    "Batches retried after an optimistic-concurrency conflict.",
)
INGESTION_READY = Gauge(
    "ledger_ingestion_ready",
    "1 while the consumer can reach the broker and the event store.",
)
