"""Prometheus metrics of the service, served at ``GET /metrics``.

Metric objects are plain in-process counters (creating them connects to nothing). Every part of
the service registers its metrics here so the names stay consistent: ``ledger_<area>_<what>``
with units last (``_seconds``, ``_total``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

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
    "Batches retried after an optimistic-concurrency conflict, or after a duplicate found at "
    "commit by a batch planned without asking the store first.",
)
INGESTION_READY = Gauge(
    "ledger_ingestion_ready",
    "1 while the consumer can reach the broker and the event store.",
)

INGESTION_COMMIT_LAG_SECONDS = Histogram(
    "ledger_ingestion_commit_lag_seconds",
    "Time from a usage event's produce (its Kafka timestamp) to the commit of its deduction.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INGESTION_LAST_COMMIT = Gauge(
    "ledger_ingestion_last_commit_timestamp_seconds",
    "Unix time of the consumer's last committed batch (a stall: it stops moving while "
    "records wait).",
)
INGESTION_RECORDS_BEHIND = Gauge(
    "ledger_ingestion_records_behind",
    "Records in the consumer's partitions not consumed yet (high watermark minus position, "
    "after each poll).",
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

TOPUP_STEPS = Counter(
    "ledger_topup_steps_total",
    "Top-up requests reaching a status, as projected (requested, needs_review, invoiced, "
    "completed, rejected, cancelled).",
    ["status"],
)
ALERTS_RAISED = Counter(
    "ledger_alerts_raised_total",
    "Wallet alerts raised, as projected, by alert kind.",
    ["alert"],
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

READY = Gauge(
    "ledger_ready",
    "1 when the last /readyz answered ready, 0 when it did not (flapping: it changes often).",
)

# -- payments -------------------------------------------------------------------------------
PAYMENT_WEBHOOKS = Counter(
    "ledger_payment_webhooks_total",
    "Payment provider webhooks received, by provider and outcome (applied, needs_review, "
    "ignored, refused: a bad signature, an old timestamp, a malformed body or unknown order).",
    ["provider", "outcome"],
)


def observe_each(histogram: Histogram, amounts: Iterable[float]) -> None:
    """``histogram.observe(amount)`` for each of ``amounts`` (not NaN), counted with one
    increment per bucket and one of the sum instead of locked increments per amount: the
    consumer observes the commit lag of every record it commits. Uses the histogram's private
    fields as ``Histogram.observe`` does in the pinned prometheus-client (no labels, no
    exemplars); ``tests/unit/test_metrics_observe_each.py`` holds the two equal."""
    bounds = histogram._upper_bounds  # the buckets' upper bounds, ascending, the last +Inf
    counts = [0] * len(bounds)
    total = 0.0
    for amount in amounts:
        counts[bisect_left(bounds, amount)] += 1  # the first bucket with amount <= bound
        total += amount
    histogram._raise_if_not_observable()  # type: ignore[no-untyped-call]
    histogram._sum.inc(total)
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)
