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
    "Usage events consumed, by outcome "
    "(applied, duplicate, failed_status, refunded, dead_lettered).",
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

# -- projections ----------------------------------------------------------------------------
PROJECTION_EVENTS = Counter(
    "ledger_projection_events_total",
    "Notifications projected into the read models.",
)
PROJECTION_POSITION = Gauge(
    "ledger_projection_position",
    "Last event-store position committed by the projection.",
)
PROJECTION_BATCH_SECONDS = Histogram(
    "ledger_projection_batch_seconds",
    "Time to read, apply and commit one projection batch.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
PROJECTION_LAG_SECONDS = Histogram(
    "ledger_projection_lag_seconds",
    "Time from an event's creation to the commit of its read-model rows (last event of a batch).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PROJECTION_LAG_EVENTS = Gauge(
    "ledger_projection_lag_events",
    "Event-store head minus projection position, at /readyz.",
)

# -- HTTP API -------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "ledger_http_requests_total",
    "HTTP requests, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "ledger_http_request_seconds",
    "HTTP request latency, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

# -- payments -------------------------------------------------------------------------------
PAYMENT_WEBHOOKS = Counter(
    "ledger_payment_webhooks_total",
    "Payment provider webhooks received, by provider and outcome (applied, needs_review, "
    "ignored, refused: a bad signature, an old timestamp, a malformed body or unknown order).",
    ["provider", "outcome"],
)
