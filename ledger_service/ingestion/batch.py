"""Applies one partition's batch of Kafka records to the ledger, exactly once.

Decoding and dead letters are this module's; routing, pricing and the one transaction per batch
(deductions + usage keys + the partition's next offset) are the service layer's
(``ledger_service.service.usage``). Dead letters are published (and acknowledged by the broker)
*before* the transaction that moves the position past them commits, so a record is never lost
between the two. A crash in between can publish a dead letter twice; replaying a dead letter is
safe because of the usage keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from ledger_service.domain.usage import Usage
from ledger_service.ingestion.decode import decode
from ledger_service.ingestion.records import (
    Consumed,
    DeadLetter,
    position_name,
    position_prefix,
)
from ledger_service.metrics import DEAD_LETTERS, USAGE_EVENTS
from ledger_service.service.ledger import LedgerApplication
from ledger_service.service.usage import BatchOutcome, Item, Refusal, UsageDeductions

log = structlog.get_logger(__name__)

__all__ = ["BatchOutcome", "Item", "UsageIngestor"]


class UsageIngestor:
    def __init__(
        self,
        ledger: LedgerApplication,
        *,
        dead_letter: Callable[[DeadLetter], None],
        trust_producer_price: bool = False,
        refund_failed_usage: bool = True,
        retry_count_max: int = 3,
    ) -> None:
        self.ledger = ledger
        self.deductions = UsageDeductions(
            ledger,
            trust_producer_price=trust_producer_price,
            refund_failed_usage=refund_failed_usage,
            retry_count_max=retry_count_max,
        )
        self._publish_dead_letter = dead_letter
        # (topic, partition) -> offsets published as dead letters by the batch in progress.
        # Per partition: batches of different partitions are applied at the same time.
        self._dead_lettered: dict[tuple[str, int], set[int]] = {}

    def next_offset(self, topic: str, partition: int) -> int | None:
        return self.ledger.consumer_position(position_name(topic, partition))

    def forget_positions(self, topic: str) -> int:
        """Forget every recorded position of ``topic``: only for a topic known to have
        restarted empty (the memory-only embedded broker). Usage keys still deduplicate."""
        return self.ledger.forget_consumer_positions(position_prefix(topic))

    @staticmethod
    def decode(records: Sequence[Consumed]) -> list[Item]:
        """The records as usage events or refusals: needs nothing but the records, so the
        consumer can decode the next batch while this one is being written."""
        return [(record.offset, _decoded(record)) for record in records]

    def apply_batch(
        self, records: Sequence[Consumed], decoded: Sequence[Item] | None = None
    ) -> BatchOutcome:
        """Apply one partition's records (in offset order) in one transaction; ``decoded``:
        what ``decode`` made of them, if the caller decoded them already."""
        if not records:
            return BatchOutcome()
        by_offset = {record.offset: record for record in records}
        items = self.decode(records) if decoded is None else decoded
        name = position_name(records[0].topic, records[0].partition)

        def refuse(refusal: Refusal) -> None:
            record = by_offset[refusal.offset]
            self._send(DeadLetter(record, refusal.code, refusal.message, refusal.usage))

        outcome = self.deductions.apply(items, position=name, refuse=refuse)
        # Kept until the batch is recorded: a retry after an outage must not publish again.
        self._dead_lettered.pop((records[0].topic, records[0].partition), None)
        _count(outcome)
        if outcome.duplicates:
            log.info(
                "usage_duplicates_ignored",
                partition=name,
                count=outcome.duplicates,
                examples=outcome.duplicate_ids,
            )
        return outcome

    def _send(self, dead_letter: DeadLetter) -> None:
        record = dead_letter.record
        published = self._dead_lettered.setdefault((record.topic, record.partition), set())
        if record.offset in published:
            return  # already published during an earlier attempt at this batch
        self._publish_dead_letter(dead_letter)
        published.add(record.offset)
        DEAD_LETTERS.labels(dead_letter.code).inc()
        log.warning(
            "usage_dead_lettered",
            code=dead_letter.code,
            reason=dead_letter.message,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )


def _decoded(record: Consumed) -> Usage | Refusal:
    decoded = decode(record)
    if isinstance(decoded, DeadLetter):
        return Refusal(record.offset, decoded.code, decoded.message)
    return decoded


def _count(outcome: BatchOutcome) -> None:
    USAGE_EVENTS.labels("applied").inc(outcome.applied)
    USAGE_EVENTS.labels("failed_status").inc(outcome.failed_status)
    USAGE_EVENTS.labels("refunded").inc(outcome.refunded)
    USAGE_EVENTS.labels("duplicate").inc(outcome.duplicates)
    USAGE_EVENTS.labels("dead_lettered").inc(outcome.dead_lettered)
