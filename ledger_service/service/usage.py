"""The usage use case: route, price and deduct a batch of usage events, exactly once.

One batch (one Kafka partition's poll, or a single event) is ONE event-store transaction
holding every deduction, the usage keys (CloudEvents source + id) of the events applied and,
when the batch came from a log, the log's next position. So after a crash either all of it is
recorded or none, and a redelivered or republished event finds its key and is counted as a
duplicate instead of being applied again.

Refunds: a usage event with status ``failed`` whose (source, id) was already billed as
delivered gives the charge back (``domain.refund``), once, in the same transaction as the rest
of the batch; when ``refund_failed_usage`` is off, or the charge was already refunded, it is a
duplicate like any other.

Refusals (an unknown sender, a price mismatch, a record the caller could not decode) are handed
to ``refuse`` *before* the transaction that moves the position past them commits, so the caller
can make them durable first (the consumer publishes them to the dead-letter topic).

Duplicates are found by asking the store which of a batch's usage keys are applied. While a
consumer sees no duplicates it skips that question (``CLEAN_BATCHES_BEFORE_SKIPPING_LOOKUP``):
the keys' primary key refuses a duplicate at commit, and the retry asks first.

Loading: a batch's wallets (and the registrations of senders not routed yet) that are not cached
are read together (``preloading``), not one by one.

Conflicts: wallets are cached without re-reading them per batch (one consumer is the only usage
writer for its partitions), so a concurrent write (a top-up, a rate-card change) surfaces as a
version conflict at save. The batch is then re-planned from fresh aggregates, up to
``retry_count_max`` times, then applied record by record; a record that still cannot be saved
is refused as ``billing.deduction_failed``.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.domain import Aggregate

from ledger_service.domain.entries import Debited
from ledger_service.domain.errors import (
    ConcurrencyConflict,
    LedgerError,
    SenderNotLinked,
    UnknownCompany,
)
from ledger_service.domain.ids import sender_registration_id
from ledger_service.domain.refund import Refund, refund_id, refund_to_wallet
from ledger_service.domain.usage import INGESTION_ACTOR, Usage, record_usage_on
from ledger_service.domain.wallet import Wallet
from ledger_service.metrics import INGESTION_CONFLICT_RETRIES
from ledger_service.service.preloading import preload, preload_senders
from ledger_service.service.runner import (
    Conflict,
    UsageKey,
    evicting_on_conflict,
    retry_on_conflict,
    translated_store_errors,
)

if TYPE_CHECKING:
    from ledger_service.service.ledger import LedgerApplication

DEDUCTION_FAILED = "billing.deduction_failed"
CLEAN_BATCHES_BEFORE_SKIPPING_LOOKUP = 20
"""Batches in a row without a duplicate after which a consumer stops asking the store which
usage keys are applied before planning (see ``UsageDeductions._asks_store``)."""
DUPLICATE_IDS_LOGGED_MAX = 5
USAGE_RETRY_BACKOFF_BASE_S = 0.005
FAILED_AFTER_BILLING = "usage reported failed after it was billed"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A record that will not change any balance, with a machine-readable code and a sentence.
    ``error`` is the ledger's own reason when it refused a decoded usage event."""

    offset: int
    code: str
    message: str
    usage: Usage | None = None
    error: LedgerError | None = None


Item = tuple[int, Usage | Refusal]
"""One record of a batch: its offset in the log and what it decoded to."""


@dataclass
class BatchOutcome:
    applied: int = 0
    failed_status: int = 0
    refunded: int = 0
    """Usage billed as delivered, then reported failed: its charge given back."""
    duplicates: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    """Records below the recorded position: another consumer already took them."""
    duplicate_ids: list[str] = field(default_factory=list)

    def add(self, other: BatchOutcome) -> None:
        self.applied += other.applied
        self.failed_status += other.failed_status
        self.refunded += other.refunded
        self.duplicates += other.duplicates
        self.dead_lettered += other.dead_lettered
        self.skipped += other.skipped
        self.duplicate_ids.extend(other.duplicate_ids[:DUPLICATE_IDS_LOGGED_MAX])


@dataclass
class _Plan:
    wallets: dict[UUID, Wallet] = field(default_factory=dict)
    usage_keys: list[UsageKey] = field(default_factory=list)
    charged: dict[tuple[str, str], tuple[Wallet, int]] = field(default_factory=dict)
    """Charges made in this batch: usage key -> (wallet, version of its ``Debited``)."""
    refunds: dict[UUID, Refund] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)
    outcome: BatchOutcome = field(default_factory=BatchOutcome)

    @property
    def aggregates(self) -> list[Aggregate]:
        return [*self.wallets.values(), *self.refunds.values()]


class UsageDeductions:
    """Applies batches of usage to the ledger for one consumer (or one call)."""

    def __init__(
        self,
        ledger: LedgerApplication,
        *,
        trust_producer_price: bool = False,
        refund_failed_usage: bool = True,
        retry_count_max: int = 3,
    ) -> None:
        self.ledger = ledger
        self.trust_producer_price = trust_producer_price
        self.refund_failed_usage = refund_failed_usage
        self.retry_count_max = retry_count_max
        # (sender, company) -> wallet id. Only a hint: the wallet's own sender set (kept
        # current by optimistic concurrency) has the last word, see _apply.
        self._routes: dict[tuple[str, str], UUID] = {}
        self._clean_batches = 0
        """Batches applied in a row that held no duplicate."""

    def _asks_store(self, attempt: int) -> bool:
        """Ask the store which of a batch's usage keys are applied before planning it?

        Always on a retry, and until a run of batches held no duplicate. After that the
        question (a statement costing about as much as writing the keys) is skipped: the keys'
        primary key still refuses a second application when the batch commits, the whole
        transaction rolls back, and the retry asks first. A producer that duplicates often
        keeps the consumer asking."""
        return attempt > 0 or self._clean_batches < CLEAN_BATCHES_BEFORE_SKIPPING_LOOKUP

    def apply(
        self, items: Sequence[Item], *, position: str | None, refuse: Callable[[Refusal], None]
    ) -> BatchOutcome:
        """Apply ``items`` (in offset order) in one transaction; with a ``position`` name,
        skip what is below the recorded position and record the next one."""
        if not items:
            return BatchOutcome()
        attempts = itertools.count()
        with translated_store_errors():
            try:
                outcome = retry_on_conflict(
                    lambda: self._attempt(
                        items, position, refuse, ask_store=self._asks_store(next(attempts))
                    ),
                    self.retry_count_max,
                    what="usage batch",
                    backoff_base_s=USAGE_RETRY_BACKOFF_BASE_S,
                )
            except ConcurrencyConflict:
                outcome = self._apply_one_by_one(items, position, refuse)
        found_applied = outcome.duplicates or outcome.refunded
        self._clean_batches = 0 if found_applied else self._clean_batches + 1
        return outcome

    def _attempt(
        self,
        items: Sequence[Item],
        position: str | None,
        refuse: Callable[[Refusal], None],
        *,
        ask_store: bool = True,
    ) -> BatchOutcome:
        start = None if position is None else self.ledger.consumer_position(position)
        pending = [item for item in items if start is None or item[0] >= start]
        if not pending:
            return BatchOutcome(skipped=len(items))
        try:
            outcome = self._plan_and_save(pending, position, refuse, ask_store)
        except Conflict:
            INGESTION_CONFLICT_RETRIES.inc()
            raise
        outcome.skipped = len(items) - len(pending)
        return outcome

    def _plan_and_save(
        self,
        pending: list[Item],
        position: str | None,
        refuse: Callable[[Refusal], None],
        ask_store: bool,
    ) -> BatchOutcome:
        plan = _Plan()
        try:
            self._plan(pending, plan, ask_store)
            for refusal in plan.refusals:
                refuse(refusal)
            with evicting_on_conflict(self.ledger, plan.aggregates):
                self._save(plan, position, next_offset=pending[-1][0] + 1)
        except BaseException:
            # Cached aggregates may now hold unsaved events: never reuse them.
            self.ledger.evict(list(plan.wallets))
            self._routes.clear()
            raise
        return plan.outcome

    def _save(self, plan: _Plan, position: str | None, *, next_offset: int) -> None:
        if position is None and not plan.usage_keys and not plan.refunds:
            return  # a single event that changed nothing: nothing to record
        self.ledger.save_consumed(
            plan.aggregates,
            usage_keys=plan.usage_keys,
            position_name=position,
            next_offset=next_offset,
        )

    def _plan(self, pending: list[Item], plan: _Plan, ask_store: bool) -> None:
        usages = [item for _, item in pending if isinstance(item, Usage)]
        self._preload(usages)
        already = self._applied([u.key for u in usages]) if ask_store else set()
        seen: set[tuple[str, str]] = set()
        outcome = plan.outcome
        for offset, item in pending:
            if isinstance(item, Refusal):
                plan.refusals.append(item)
                continue
            key = item.key  # a property that builds a tuple: once per record
            if key in already or key in seen:
                try:
                    if not item.billable and self._refunded(item, plan):
                        outcome.refunded += 1
                        continue
                except LedgerError as exc:
                    plan.refusals.append(Refusal(offset, exc.code, exc.message, item, exc))
                    continue
                outcome.duplicates += 1
                if len(outcome.duplicate_ids) < DUPLICATE_IDS_LOGGED_MAX:
                    outcome.duplicate_ids.append(item.reference)
                continue
            try:
                wallet, version = self._apply(item, plan.wallets)
            except LedgerError as exc:
                plan.refusals.append(Refusal(offset, exc.code, exc.message, item, exc))
                continue
            seen.add(key)
            if version is not None:
                plan.charged[key] = (wallet, version)
            plan.usage_keys.append(
                UsageKey(item.source, item.event_id, item.company_id, wallet.id, version)
            )
            if item.billable:
                outcome.applied += 1
            else:
                outcome.failed_status += 1
        outcome.dead_lettered = len(plan.refusals)
        if not ask_store:
            self._check_refusals_are_new(plan)

    def _applied(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return self.ledger.command_store.select_applied_usage_keys(keys)

    def _check_refusals_are_new(self, plan: _Plan) -> None:
        """Planned without asking the store: a refused event may be a duplicate of one applied
        before (its sender or price has changed since), which is a duplicate, not a dead
        letter. Ask about those few before refusing them; if any was applied, plan again."""
        refused = [r.usage.key for r in plan.refusals if r.usage is not None]
        if refused and self._applied(refused):
            raise Conflict

    # -- routing --------------------------------------------------------------------------

    def _preload(self, usages: list[Usage]) -> None:
        """Load the batch's wallets (and, for senders not routed yet, their registrations) that
        are not cached, in a few statements for all of them rather than two per aggregate."""
        wallets: set[UUID] = set()
        unrouted: set[str] = set()
        for usage in usages:
            wallet_id = self._routes.get((usage.waba_id, usage.company_id))
            if wallet_id is None:
                unrouted.add(usage.waba_id)
            else:
                wallets.add(wallet_id)
        preload(self.ledger, wallets)
        if unrouted:
            preload_senders(self.ledger, unrouted)

    def _apply(self, usage: Usage, wallets: dict[UUID, Wallet]) -> tuple[Wallet, int | None]:
        """The wallet charged and the version of its charge, its ``Debited`` (None: not
        billable, nothing charged)."""
        wallet = self._route(usage, wallets)
        try:
            version = record_usage_on(wallet, usage, trust_producer_price=self.trust_producer_price)
        except SenderNotLinked:
            self._routes.pop((usage.waba_id, usage.company_id), None)
            if self._sender_linked_in_store(wallet.id, usage.waba_id):
                raise Conflict from None  # our cached wallet was stale
            if self._route_changed(usage, wallet.id):
                raise Conflict from None
            raise
        return wallet, version

    # -- refunds of usage reported failed after billing -----------------------------------

    def _refunded(self, usage: Usage, plan: _Plan) -> bool:
        """Give back the charge of ``usage`` (already billed as delivered) in this batch; False
        when there is nothing to give back: refunds are off, it charged nothing, or it was
        refunded already."""
        if not self.refund_failed_usage:
            return False
        identity = refund_id(usage.source, usage.event_id)
        if identity in plan.refunds or self.ledger.refund_exists(identity):
            return False
        debit = _pending_charge(plan, usage.key) or self.ledger.usage_charge(usage.key)
        if debit is None or debit.amount <= 0:
            return False
        wallet = plan.wallets.get(debit.originator_id)
        if wallet is None:
            wallet = plan.wallets.setdefault(
                debit.originator_id, self.ledger.get_wallet_by_id(debit.originator_id)
            )
        if wallet.company_id != usage.company_id:
            return False  # a failure report naming another company is not this charge's
        refund = Refund.of_usage(
            debit,
            company_id=wallet.company_id,
            usage_source=usage.source,
            usage_id=usage.event_id,
            reason=FAILED_AFTER_BILLING,
            actor=INGESTION_ACTOR,
        )
        refund_to_wallet(wallet, refund, debit)
        plan.refunds[refund.id] = refund
        return True

    def _route(self, usage: Usage, wallets: dict[UUID, Wallet]) -> Wallet:
        route = (usage.waba_id, usage.company_id)
        wallet_id = self._routes.get(route)
        if wallet_id is not None and wallet_id in wallets:
            return wallets[wallet_id]  # the object holding this batch's pending events
        try:
            wallet = self.ledger.wallet_for_sender(usage.waba_id, usage.company_id)
        except (SenderNotLinked, UnknownCompany):
            # A negative answer from the cache is re-read before it is believed.
            self.ledger.evict([sender_registration_id(usage.waba_id)])
            wallet = self.ledger.wallet_for_sender(usage.waba_id, usage.company_id)
        self._routes[route] = wallet.id
        return wallets.setdefault(wallet.id, wallet)

    def _route_changed(self, usage: Usage, wallet_id: UUID) -> bool:
        """Has the sender moved to another wallet since we cached its registration?"""
        self.ledger.evict([sender_registration_id(usage.waba_id)])
        try:
            current = self.ledger.wallet_for_sender(usage.waba_id, usage.company_id)
        except LedgerError:
            return False
        return current.id != wallet_id

    def _sender_linked_in_store(self, wallet_id: UUID, waba_id: str) -> bool:
        self.ledger.evict([wallet_id])
        return waba_id in self.ledger.get_wallet_by_id(wallet_id).senders

    # -- the fallback ---------------------------------------------------------------------

    def _apply_one_by_one(
        self, items: Sequence[Item], position: str | None, refuse: Callable[[Refusal], None]
    ) -> BatchOutcome:
        total = BatchOutcome()
        for item in items:
            try:
                single = retry_on_conflict(
                    functools.partial(self._attempt, [item], position, refuse, ask_store=True),
                    self.retry_count_max,
                    what="usage event",
                    backoff_base_s=USAGE_RETRY_BACKOFF_BASE_S,
                )
            except ConcurrencyConflict as exc:
                self._deduction_failed(item, position, refuse, exc)
                total.dead_lettered += 1
                continue
            total.add(single)
        return total

    def _deduction_failed(
        self,
        item: Item,
        position: str | None,
        refuse: Callable[[Refusal], None],
        error: ConcurrencyConflict,
    ) -> None:
        offset, content = item
        usage = content if isinstance(content, Usage) else None
        detail = (
            ""
            if usage is None
            else f" company={usage.company_id} sender={usage.waba_id} "
            f"conversation={usage.conversation_id} event={usage.reference}"
        )
        message = f"conflict survived {self.retry_count_max} retries;{detail}"
        refuse(Refusal(offset, DEDUCTION_FAILED, message, usage, error))
        if position is not None:
            self.ledger.advance_consumer_position(position, next_offset=offset + 1)


def _pending_charge(plan: _Plan, key: tuple[str, str]) -> Debited | None:
    """The charge of ``key`` made earlier in this batch (not saved yet), if any."""
    wallet, version = plan.charged.get(key, (None, 0))
    if wallet is None:
        return None
    debit = next(e for e in wallet.pending_events if e.originator_version == version)
    assert isinstance(debit, Debited), debit
    return debit
