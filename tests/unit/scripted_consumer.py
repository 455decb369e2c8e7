"""A ``UsageConsumer`` for unit tests: the consumer's own loop and logic, with a scripted
stand-in for the broker client and an ingestor of the test's own (never a real connection)."""

from __future__ import annotations

from typing import Any, cast

from ledger_service.ingestion.batch import UsageIngestor
from ledger_service.ingestion.consumer import UsageConsumer


def scripted_consumer(ingestor: object, broker: object = None, **options: Any) -> UsageConsumer:
    """``options``: the consumer's own (``batch_size_max``, ``concurrency``, ...)."""
    owner = UsageConsumer(
        cast(UsageIngestor, ingestor),
        bootstrap="127.0.0.1:1",
        topic="t",
        dlq_topic="d",
        group_id="g",
        **options,
    )
    if broker is not None:
        owner._consumer = cast(Any, broker)
    return owner
