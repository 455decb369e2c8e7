"""Applies one partition's batch of usage records to the ledger, exactly once.

Per batch (one partition, one poll) there is ONE event-store transaction holding every deduction,
the usage keys (CloudEvents source + id) of the events applied and the partition's next offset.
So after a crash either all of it is recorded or none, and a redelivered or republished event
finds its key and is counted as a duplicate instead of being applied again.

Dead letters are published (and acknowledged by the broker) *before* the transaction that moves
the position past them commits, so a record is never lost between the two. A crash in between
can publish a dead letter twice; replaying a dead letter is safe because of the usage keys.

Conflicts: the aggregates are cached without re-reading them per batch (this process is the
only usage writer for its partitions), so a concurrent API write (a top-up, a rate-card change)
surfaces as an optimistic-concurrency ``IntegrityError`` at save. The batch is then re-planned
from fresh aggregates, up to ``retry_count_max`` times, then applied record by record; a record
that still cannot be saved is dead-lettered as ``billing.deduction_failed``.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast
from uuid import UUID

import structlog
from eventsourcing.persistence import IntegrityError

from ledger_service.application import LedgerApplication, Usage, record_usage_on
from ledger_service.domain.errors import LedgerError, SenderNotLinked, UnknownCompany
from ledger_service.domain.ids import sender_registration_id
from ledger_service.domain.wallet import Wallet
from ledger_service.ingestion.decode import decode
from ledger_service.ingestion.records import (
    DEDUCTION_FAILED,
    Consumed,
    DeadLetter,
    position_name,
    position_prefix,
)
from ledger_service.metrics import DEAD_LETTERS, INGESTION_CONFLICT_RETRIES, USAGE_EVENTS

log = structlog.get_logger(__name__)

DUPLICATE_IDS_LOGGED_MAX = 5


@dataclass
class BatchOutcome:
    applied: int = 0
    failed_status: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    """Records below the recorded position: another consumer already took them."""
    duplicate_ids: list[str] = field(default_factory=list)

    def count_metrics(self) -> None:
        USAGE_EVENTS.labels("applied").inc(self.applied)
        USAGE_EVENTS.labels("failed_status").inc(self.failed_status)
        USAGE_EVENTS.labels("duplicate").inc(self.duplicates)
        USAGE_EVENTS.labels("dead_lettered").inc(self.dead_lettered)


@dataclass
class _Plan:
    wallets: dict[UUID, Wallet] = field(default_factory=dict)
    usage_keys: list[tuple[str, str, str]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    outcome: BatchOutcome = field(default_factory=BatchOutcome)


class _StaleCache(Exception):
    """A cached aggregate turned out to be older than the store: re-plan from fresh ones."""


class UsageIngestor:
    def __init__(
        self,
        ledger: LedgerApplication,
        *,
        dead_letter: Callable[[DeadLetter], None],
        trust_producer_price: bool = False,
        retry_count_max: int = 3,
    ) -> None:
        self.ledger = ledger
        self._publish_dead_letter = dead_letter
        self.trust_producer_price = trust_producer_price
        self.retry_count_max = retry_count_max
        self._dead_lettered: set[tuple[str, int, int]] = set()
        # (sender, company) -> wallet id. Only a hint: the wallet's own sender set (kept
        # current by optimistic concurrency) has the last word, see _apply.
        self._routes: dict[tuple[str, str], UUID] = {}

    def next_offset(self, topic: str, partition: int) -> int | None:
        return self.ledger.consumer_position(position_name(topic, partition))

    def forget_positions(self, topic: str) -> int:
        """Forget every recorded position of ``topic``: only for a topic known to have
        restarted empty (the memory-only embedded broker). Usage keys still deduplicate."""
        return self.ledger.forget_consumer_positions(position_prefix(topic))

    # -- the batch ------------------------------------------------------------------------

    def apply_batch(self, records: Sequence[Consumed]) -> BatchOutcome:
        """Apply one partition's records (in offset order) in one transaction."""
        if not records:
            return BatchOutcome()
        decoded = [(record, decode(record)) for record in records]
        name = position_name(records[0].topic, records[0].partition)
        for attempt in range(self.retry_count_max + 1):
            start = self.ledger.consumer_position(name)
            pending = [(r, d) for r, d in decoded if start is None or r.offset >= start]
            if not pending:
                return BatchOutcome(skipped=len(decoded))
            try:
                outcome = self._plan_and_save(pending, name)
            except (IntegrityError, _StaleCache):
                INGESTION_CONFLICT_RETRIES.inc()
                time.sleep(random.uniform(0, 0.005 * 2**attempt))
                continue
            outcome.skipped = len(decoded) - len(pending)
            return self._finish(outcome, name)
        log.warning("batch_conflicts_exhausted", partition=name, records=len(pending))
        return self._finish(self._apply_one_by_one(pending, name), name)

    def _plan_and_save(
        self, pending: list[tuple[Consumed, Usage | DeadLetter]], name: str
    ) -> BatchOutcome:
        plan = _Plan()
        try:
            self._plan(pending, plan)
            self._send_dead_letters(plan.dead_letters)
            self.ledger.save_consumed(
                list(plan.wallets.values()),
                usage_keys=plan.usage_keys,
                position_name=name,
                next_offset=pending[-1][0].offset + 1,
            )
        except BaseException:
            # Cached aggregates may now hold unsaved events: never reuse them.
            self._evict(plan.wallets)
            self._routes.clear()
            raise
        return plan.outcome

    def _finish(self, outcome: BatchOutcome, name: str) -> BatchOutcome:
        self._dead_lettered.clear()
        outcome.count_metrics()
        if outcome.duplicates:
            log.info(
                "usage_duplicates_ignored",
                partition=name,
                count=outcome.duplicates,
                examples=outcome.duplicate_ids,
            )
        return outcome

    def _plan(self, pending: list[tuple[Consumed, Usage | DeadLetter]], plan: _Plan) -> None:
        keys = [item.key for _, item in pending if isinstance(item, Usage)]
        already = self.ledger.command_store.select_applied_usage_keys(keys)
        seen: set[tuple[str, str]] = set()
        outcome = plan.outcome
        for record, item in pending:
            if isinstance(item, DeadLetter):
                plan.dead_letters.append(item)
                continue
            if item.key in already or item.key in seen:
                outcome.duplicates += 1
                if len(outcome.duplicate_ids) < DUPLICATE_IDS_LOGGED_MAX:
                    outcome.duplicate_ids.append(f"{item.source}#{item.event_id}")
                continue
            try:
                self._apply(item, plan.wallets)
            except LedgerError as exc:
                plan.dead_letters.append(DeadLetter(record, exc.code, exc.message, item))
                continue
            seen.add(item.key)
            plan.usage_keys.append((item.source, item.event_id, item.company_id))
            if item.billable:
                outcome.applied += 1
            else:
                outcome.failed_status += 1
        outcome.dead_lettered = len(plan.dead_letters)

    def _apply(self, usage: Usage, wallets: dict[UUID, Wallet]) -> None:
        wallet = self._route(usage, wallets)
        try:
            record_usage_on(wallet, usage, trust_producer_price=self.trust_producer_price)
        except SenderNotLinked:
            self._routes.pop((usage.waba_id, usage.company_id), None)
            if self._sender_linked_in_store(wallet.id, usage.waba_id):
                raise _StaleCache from None
            if self._route_changed(usage, wallet.id):
                raise _StaleCache from None
            raise

    def _route(self, usage: Usage, wallets: dict[UUID, Wallet]) -> Wallet:
        route = (usage.waba_id, usage.company_id)
        wallet_id = self._routes.get(route)
        if wallet_id is not None and wallet_id in wallets:
            return wallets[wallet_id]  # the object holding this batch's pending events
        try:
            wallet = self.ledger.wallet_for_sender(usage.waba_id, usage.company_id)
        except (SenderNotLinked, UnknownCompany):
            # A negative answer from the cache is re-read before it is believed.
            self._evict_ids([sender_registration_id(usage.waba_id)])
            wallet = self.ledger.wallet_for_sender(usage.waba_id, usage.company_id)
        self._routes[route] = wallet.id
        return wallets.setdefault(wallet.id, wallet)

    def _route_changed(self, usage: Usage, wallet_id: UUID) -> bool:
        """Has the sender moved to another wallet since we cached its registration?"""
        self._evict_ids([sender_registration_id(usage.waba_id)])
        try:
            current = self.ledger.wallet_for_sender(usage.waba_id, usage.company_id)
        except LedgerError:
            return False
        return current.id != wallet_id

    def _sender_linked_in_store(self, wallet_id: UUID, waba_id: str) -> bool:
        self._evict_ids([wallet_id])
        fresh = cast(Wallet, self.ledger.repository.get(wallet_id))
        return waba_id in fresh.senders

    # -- fallbacks and dead letters -------------------------------------------------------

    def _apply_one_by_one(
        self, pending: list[tuple[Consumed, Usage | DeadLetter]], name: str
    ) -> BatchOutcome:
        total = BatchOutcome()
        for record, item in pending:
            for attempt in range(self.retry_count_max + 1):
                if (self.ledger.consumer_position(name) or 0) > record.offset:
                    total.skipped += 1
                    break
                try:
                    single = self._plan_and_save([(record, item)], name)
                except (IntegrityError, _StaleCache):
                    time.sleep(random.uniform(0, 0.005 * 2**attempt))
                    continue
                _add(total, single)
                break
            else:
                self._dead_letter_deduction_failed(record, item, name)
                total.dead_lettered += 1
        return total

    def _dead_letter_deduction_failed(
        self, record: Consumed, item: Usage | DeadLetter, name: str
    ) -> None:
        usage = item if isinstance(item, Usage) else None
        detail = (
            ""
            if usage is None
            else f" company={usage.company_id} sender={usage.waba_id} "
            f"conversation={usage.conversation_id} event={usage.source}#{usage.event_id}"
        )
        self._send_dead_letters(
            [
                DeadLetter(
                    record,
                    DEDUCTION_FAILED,
                    f"conflict survived {self.retry_count_max} retries;{detail}",
                    usage,
                )
            ]
        )
        with contextlib.suppress(IntegrityError):  # someone else moved past it: fine
            self.ledger.save_consumed(
                [], usage_keys=[], position_name=name, next_offset=record.offset + 1
            )

    def _send_dead_letters(self, dead_letters: list[DeadLetter]) -> None:
        for dead_letter in dead_letters:
            record = dead_letter.record
            identity = (record.topic, record.partition, record.offset)
            if identity in self._dead_lettered:
                continue  # already published during an earlier attempt at this batch
            self._publish_dead_letter(dead_letter)
            self._dead_lettered.add(identity)
            DEAD_LETTERS.labels(dead_letter.code).inc()
            log.warning(
                "usage_dead_lettered",
                code=dead_letter.code,
                reason=dead_letter.message,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )

    def _evict(self, wallets: dict[UUID, Wallet]) -> None:
        self._evict_ids(list(wallets))

    def _evict_ids(self, ids: list[UUID]) -> None:
        cache = self.ledger.repository.cache
        if cache is None:
            return
        for aggregate_id in ids:
            with contextlib.suppress(KeyError):
                cache.get(aggregate_id, evict=True)


def _add(total: BatchOutcome, single: BatchOutcome) -> None:
    total.applied += single.applied
    total.failed_status += single.failed_status
    total.duplicates += single.duplicates
    total.dead_lettered += single.dead_lettered
    total.duplicate_ids.extend(single.duplicate_ids[:DUPLICATE_IDS_LOGGED_MAX])
