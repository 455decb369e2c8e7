"""Use cases of the ledger, on ``eventsourcing.Application``.

Every command is idempotent: it takes an idempotency key scoped to a company, and the key, a
fingerprint of the request and the command's result are written by the event store *in the same
transaction* as the events the command produced (see ``ledger_service.store``). So a key is never
claimed unless its events were written, a repeat returns the original result and writes nothing,
and the same key with another request is refused with ``IdempotencyConflict``.

Optimistic concurrency: two commands that touch the same aggregate write the same version, and
one fails with the library's ``IntegrityError``. The loser re-reads and re-decides, at most
``retry_count_max`` times, then raises ``ConcurrencyConflict`` having written nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Tracking, Transcoding

from ledger_service.domain import accounts
from ledger_service.domain.errors import (
    ConcurrencyConflict,
    CurrencyMismatch,
    IdempotencyConflict,
    InvalidArgument,
    LedgerError,
    PriceMismatch,
    SenderNotLinked,
    TopupNotFound,
    UnknownCompany,
    UnknownSender,
    WalletAlreadyExists,
    WalletNotFound,
)
from ledger_service.domain.ids import check_key, sender_registration_id, wallet_id
from ledger_service.domain.money import format_amount, parse_amount, parse_currency
from ledger_service.domain.policies import LOW_BALANCE_PERCENT_DEFAULT, check_cycle_anchor
from ledger_service.domain.registry import InvoiceNumberClaim, SenderRegistration
from ledger_service.domain.topup import TopupRequest, check_text
from ledger_service.domain.transfer import Transfer, check_commission_rate, commission_of
from ledger_service.domain.wallet import CreditBucket, CreditKind, PoolMode, Wallet

IDEMPOTENCY_KEY_LENGTH_MAX = 200
AUTO_TOPUP_ACTOR = "auto-topup"
E = TypeVar("E", PoolMode, CreditKind, CreditBucket)
CommandResult = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """What the event store keeps of a command, written atomically with its events."""

    scope: str
    key: str
    fingerprint: str
    result: CommandResult
    position: int | None = None


class CommandStore(Protocol):
    """The event store's extension that keeps command records and applied usage keys, written
    atomically with events (see ``store.LedgerRecorder``)."""

    def select_command(self, scope: str, key: str) -> CommandRecord | None: ...

    def select_applied_usage_keys(
        self, keys: Iterable[tuple[str, str]]
    ) -> set[tuple[str, str]]: ...

    def max_tracking_id(self, application_name: str) -> int | None: ...

    def forget_consumer_positions(self, prefix: str) -> int: ...

    def select_positions(self, originator_id: UUID) -> list[tuple[int, int]]: ...


@dataclass(frozen=True, slots=True)
class Usage:
    """One validated usage event (one message sent), independent of how it arrived."""

    source: str
    event_id: str
    company_id: str
    waba_id: str
    conversation_id: str
    category: str
    status: str
    units: int
    unit_price: Decimal | None = None
    currency: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """CloudEvents identity: the same (source, id) changes balances at most once."""
        return (self.source, self.event_id)

    @property
    def billable(self) -> bool:
        return self.status != "failed"


class UsageOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"


@dataclass
class Decision:
    """What a command decided: the aggregates to save and the result to return."""

    aggregates: Sequence[Aggregate]
    result: CommandResult = field(default_factory=dict)


def fingerprint_of(command: str, request: Mapping[str, object]) -> str:
    body = json.dumps({"command": command, **request}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def check_idempotency_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > IDEMPOTENCY_KEY_LENGTH_MAX:
        raise InvalidArgument(f"idempotency key must be 1-{IDEMPOTENCY_KEY_LENGTH_MAX} characters")
    return key


class SetAsSortedList(Transcoding):
    """Sets (a wallet's linked senders) in snapshots, sorted so equal states encode equally."""

    type = set
    name = "set_sorted"

    def encode(self, obj: set[Any]) -> list[Any]:
        return sorted(obj)

    def decode(self, data: list[Any]) -> set[Any]:
        return set(data)


class LedgerApplication(Application[UUID]):
    name = "Ledger"
    is_snapshotting_enabled = True
    # Wallets take many events (one per message); a snapshot every 200 bounds a cold load
    # (a restarted consumer reloads every active wallet) at little cost to ingestion.
    snapshotting_intervals = {Wallet: 200}

    retry_count_max = 8
    retry_backoff_base_s = 0.002

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """Snapshot the saved in-memory aggregate instead of re-reading it from the store.

        The library's default reloads the aggregate (replaying up to a whole interval of events
        from the database) for every snapshot, which cost a third of ingestion time. Right after
        a successful save the in-memory state *is* the recorded state at ``aggregate.version``.
        (Overrides a private hook of the exactly pinned eventsourcing version.)
        """
        if self.snapshots is None:
            return
        due: dict[UUID, Aggregate] = {}
        for domain_event in processing_event.events:
            aggregate = processing_event.aggregates.get(domain_event.originator_id)
            interval = self.snapshotting_intervals.get(type(aggregate)) if aggregate else None
            if (
                aggregate is not None
                and interval
                and domain_event.originator_version % interval == 0
            ):
                due[aggregate.id] = cast(Aggregate, aggregate)
        for aggregate in due.values():
            self.snapshots.put([Snapshot.take(aggregate)])

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(SetAsSortedList())

    @property
    def command_store(self) -> CommandStore:
        return cast(CommandStore, self.recorder)

    # -- the idempotent command runner ----------------------------------------------------

    def execute(
        self,
        *,
        scope: str,
        idempotency_key: str,
        command: str,
        request: Mapping[str, object],
        decide: Callable[[], Decision],
    ) -> CommandResult:
        """Run ``decide`` and save its aggregates with the command record, exactly once."""
        key = check_idempotency_key(idempotency_key)
        fingerprint = fingerprint_of(command, request)
        for attempt in range(self.retry_count_max + 1):
            previous = self.command_store.select_command(scope, key)
            if previous is not None:
                return self._replayed(previous, fingerprint, command)
            try:
                decision = decide()
            except LedgerError:
                # A request with this key may have committed since we looked: its effects can
                # make ours invalid (a top-up already paid), yet the answer is its result.
                previous = self.command_store.select_command(scope, key)
                if previous is not None:
                    return self._replayed(previous, fingerprint, command)
                raise
            record = CommandRecord(scope, key, fingerprint, decision.result)
            try:
                recordings = self.save(*decision.aggregates, command=record)
            except IntegrityError:
                # Someone else wrote one of these aggregates (or this key) first.
                self._evict(decision.aggregates)
                time.sleep(random.uniform(0, self.retry_backoff_base_s * 2**attempt))
                continue
            position = max(r.notification.id for r in recordings) if recordings else None
            return {**decision.result, "position": position}
        raise ConcurrencyConflict(
            f"{command} lost {self.retry_count_max + 1} optimistic-concurrency races; "
            "nothing was written, retry later"
        )

    @staticmethod
    def _replayed(previous: CommandRecord, fingerprint: str, command: str) -> CommandResult:
        if previous.fingerprint != fingerprint:
            raise IdempotencyConflict(
                f"idempotency key {previous.key!r} was already used for a different request"
            )
        return {**previous.result, "position": previous.position}

    def _evict(self, aggregates: Sequence[Aggregate]) -> None:
        cache = self.repository.cache
        if cache is None:
            return
        for aggregate in aggregates:
            with contextlib.suppress(KeyError):
                cache.get(aggregate.id, evict=True)

    # -- loading --------------------------------------------------------------------------

    def get_wallet(self, company_id: str, pool_sender_id: str | None = None) -> Wallet:
        check_key(company_id, "company_id")
        try:
            return cast(Wallet, self.repository.get(wallet_id(company_id, pool_sender_id)))
        except AggregateNotFoundError:
            pool = f" (pool of sender {pool_sender_id})" if pool_sender_id else ""
            raise WalletNotFound(f"no wallet for company {company_id}{pool}") from None

    def get_topup(self, topup_id: UUID) -> TopupRequest:
        try:
            return cast(TopupRequest, self.repository.get(topup_id))
        except AggregateNotFoundError:
            raise TopupNotFound(f"no top-up request {topup_id}") from None

    def _get_or_register_sender(self, waba_id: str) -> SenderRegistration:
        try:
            return cast(SenderRegistration, self.repository.get(sender_registration_id(waba_id)))
        except AggregateNotFoundError:
            return SenderRegistration(waba_id=waba_id)

    # -- wallets --------------------------------------------------------------------------

    def open_wallet(
        self,
        *,
        company_id: str,
        currency: str,
        mode: str = "shared",
        postpaid_limit: object = "0",
        included_quota: object = "0",
        rate_card: Mapping[str, object] | None = None,
        pool_sender_id: str | None = None,
        actor: str,
        idempotency_key: str,
    ) -> CommandResult:
        """Open a wallet; the first cycle's included quota is granted at once."""
        request = {
            "company_id": company_id,
            "currency": currency,
            "mode": mode,
            "postpaid_limit": str(postpaid_limit),
            "included_quota": str(included_quota),
            "rate_card": {k: str(v) for k, v in (rate_card or {}).items()},
            "pool_sender_id": pool_sender_id,
        }

        def decide() -> Decision:
            wallet = Wallet.open(
                company_id=company_id,
                currency=parse_currency(currency),
                mode=parse_mode(mode),
                postpaid_limit=parse_amount(postpaid_limit, field="postpaid_limit"),
                included_quota=parse_amount(included_quota, field="included_quota"),
                rate_card=cast(dict[str, Decimal], dict(rate_card or {})),
                actor=actor,
                pool_sender_id=pool_sender_id,
            )
            self._check_wallet_absent(wallet.id, company_id)
            if wallet.included_quota > 0:
                wallet.credit(
                    wallet.included_quota,
                    bucket=CreditBucket.INCLUDED,
                    kind=CreditKind.GRANT,
                    counter_account=accounts.PROMOTIONS,
                    reference="included-quota:opening",
                    actor=actor,
                )
            aggregates: list[Aggregate] = [wallet]
            if pool_sender_id is not None:
                aggregates.append(self._link(wallet, pool_sender_id, actor))
            return Decision(aggregates, {"wallet_id": str(wallet.id), "company_id": company_id})

        return self.execute(
            scope=company_id,
            idempotency_key=idempotency_key,
            command="open_wallet",
            request=request,
            decide=decide,
        )

    def _check_wallet_absent(self, id_: UUID, company_id: str) -> None:
        try:
            self.repository.get(id_)
        except AggregateNotFoundError:
            return
        raise WalletAlreadyExists(f"company {company_id} already has that wallet")

    def _link(self, wallet: Wallet, waba_id: str, actor: str) -> SenderRegistration:
        registration = self._get_or_register_sender(waba_id)
        wallet.link_sender(waba_id, actor=actor)
        registration.assign(wallet_id=wallet.id, company_id=wallet.company_id, actor=actor)
        return registration

    def link_sender(
        self,
        *,
        company_id: str,
        waba_id: str,
        pool_sender_id: str | None = None,
        actor: str,
        idempotency_key: str,
    ) -> CommandResult:
        def decide() -> Decision:
            wallet = self.get_wallet(company_id, pool_sender_id)
            registration = self._link(wallet, check_key(waba_id, "waba_id"), actor)
            return Decision([wallet, registration], {"company_id": company_id, "waba_id": waba_id})

        return self.execute(
            scope=company_id,
            idempotency_key=idempotency_key,
            command="link_sender",
            request={"waba_id": waba_id, "pool_sender_id": pool_sender_id},
            decide=decide,
        )

    def unlink_sender(
        self,
        *,
        company_id: str,
        waba_id: str,
        pool_sender_id: str | None = None,
        actor: str,
        idempotency_key: str,
    ) -> CommandResult:
        def decide() -> Decision:
            wallet = self.get_wallet(company_id, pool_sender_id)
            wallet.unlink_sender(waba_id, actor=actor)
            registration = self._get_or_register_sender(waba_id)
            registration.release(wallet_id=wallet.id, actor=actor)
            return Decision([wallet, registration], {"company_id": company_id, "waba_id": waba_id})

        return self.execute(
            scope=company_id,
            idempotency_key=idempotency_key,
            command="unlink_sender",
            request={"waba_id": waba_id, "pool_sender_id": pool_sender_id},
            decide=decide,
        )

    def configure_wallet(
        self,
        *,
        company_id: str,
        pool_sender_id: str | None = None,
        postpaid_limit: object | None = None,
        included_quota: object | None = None,
        rate_card: Mapping[str, object] | None = None,
        alerts: Mapping[str, Any] | None = None,
        auto_topup: Mapping[str, Any] | None = None,
        spending_caps: Mapping[str, Mapping[str, Any]] | None = None,
        cycle: Mapping[str, Any] | None = None,
        actor: str,
        idempotency_key: str,
    ) -> CommandResult:
        """Change limits, quota, rate card and policies; each change is an event.

        ``alerts``: ``low_balance_threshold`` (absolute, or null for the percentage),
        ``low_balance_percent``, ``burn_limit_24h``; ``auto_topup``: ``enabled``,
        ``trigger_balance``, ``amount``, ``auto_approve``; ``spending_caps``: category ->
        ``units`` and/or ``amount`` per day; ``cycle``: ``anchor_day``, ``anchor_time``,
        ``time_zone``. A section replaces that whole policy; omitted keys take defaults."""
        changes = (postpaid_limit, included_quota, rate_card, alerts, auto_topup, spending_caps)
        if all(change is None for change in changes) and cycle is None:
            raise InvalidArgument("nothing to change")
        request = {
            "pool_sender_id": pool_sender_id,
            "postpaid_limit": None if postpaid_limit is None else str(postpaid_limit),
            "included_quota": None if included_quota is None else str(included_quota),
            "rate_card": None if rate_card is None else {k: str(v) for k, v in rate_card.items()},
            "alerts": _plain(alerts),
            "auto_topup": _plain(auto_topup),
            "spending_caps": _plain(spending_caps),
            "cycle": _plain(cycle),
        }

        def decide() -> Decision:
            wallet = self.get_wallet(company_id, pool_sender_id)
            if postpaid_limit is not None:
                wallet.change_postpaid_limit(
                    parse_amount(postpaid_limit, field="postpaid_limit"), actor=actor
                )
            if included_quota is not None:
                wallet.change_included_quota(
                    parse_amount(included_quota, field="included_quota"), actor=actor
                )
            if rate_card is not None:
                wallet.change_rate_card(cast(dict[str, Decimal], dict(rate_card)), actor=actor)
            configure_policies(
                wallet,
                alerts=alerts,
                auto_topup=auto_topup,
                spending_caps=spending_caps,
                cycle=cycle,
                actor=actor,
            )
            return Decision([wallet], {"company_id": company_id})

        return self.execute(
            scope=company_id,
            idempotency_key=idempotency_key,
            command="configure_wallet",
            request=request,
            decide=decide,
        )

    def credit_wallet(
        self,
        *,
        company_id: str,
        amount: object,
        kind: str,
        bucket: str = "prepaid",
        reference: str,
        pool_sender_id: str | None = None,
        actor: str,
        idempotency_key: str,
    ) -> CommandResult:
        """Operator credits outside the top-up flow: grants, refunds, adjustments."""
        credit_kind = parse_enum(CreditKind, kind, "kind")
        if credit_kind in (CreditKind.TOPUP, CreditKind.TRANSFER):
            raise InvalidArgument(f"{kind} credits only come from top-ups and transfers")
        counter = {
            CreditKind.GRANT: accounts.PROMOTIONS,
            CreditKind.REFUND: accounts.REFUNDS,
            CreditKind.ADJUSTMENT: accounts.ADJUSTMENTS,
        }[credit_kind]

        def decide() -> Decision:
            wallet = self.get_wallet(company_id, pool_sender_id)
            wallet.credit(
                parse_amount(amount, allow_zero=False),
                bucket=parse_enum(CreditBucket, bucket, "bucket"),
                kind=credit_kind,
                counter_account=counter,
                reference=check_text(reference, "reference", 200),
                actor=actor,
            )
            return Decision([wallet], {"company_id": company_id})

        return self.execute(
            scope=company_id,
            idempotency_key=idempotency_key,
            command="credit_wallet",
            request={
                "amount": str(amount),
                "kind": kind,
                "bucket": bucket,
                "reference": reference,
                "pool_sender_id": pool_sender_id,
            },
            decide=decide,
        )

    # -- top-ups --------------------------------------------------------------------------

    def request_topup(
        self,
        *,
        company_id: str,
        amount: object,
        currency: str,
        note: str = "",
        pool_sender_id: str | None = None,
        actor: str,
        idempotency_key: str,
    ) -> CommandResult:
        def decide() -> Decision:
            wallet = self.get_wallet(company_id, pool_sender_id)
            if parse_currency(currency) != wallet.currency:
                raise CurrencyMismatch(
                    f"top-up in {currency} for a wallet kept in {wallet.currency}"
                )
            topup = TopupRequest.request(
                company_id=company_id,
                wallet_id=wallet.id,
                amount=parse_amount(amount, allow_zero=False),
                currency=currency,
                note=note,
                actor=actor,
            )
            return Decision([topup], {"topup_id": str(topup.id), "status": topup.status.value})

        return self.execute(
            scope=company_id,
            idempotency_key=idempotency_key,
            command="request_topup",
            request={
                "amount": str(amount),
                "currency": currency,
                "note": note,
                "pool_sender_id": pool_sender_id,
            },
            decide=decide,
        )

    def approve_topup(self, *, topup_id: UUID, actor: str, idempotency_key: str) -> CommandResult:
        """Approve and issue the invoice ``TOP-{yyyyMM}-{company}-{suffix}``."""

        def decide() -> Decision:
            topup = self.get_topup(topup_id)
            number = new_invoice_number(topup.company_id)
            topup.approve(invoice_number=number, actor=actor)
            claim = InvoiceNumberClaim(invoice_number=number, topup_id=topup.id)
            return Decision([topup, claim], topup_result(topup))

        return self._topup_command("approve_topup", topup_id, {}, idempotency_key, decide)

    def reject_topup(
        self,
        *,
        topup_id: UUID,
        reason: str,
        actor: str,
        idempotency_key: str,
    ) -> CommandResult:
        def decide() -> Decision:
            topup = self.get_topup(topup_id)
            topup.reject(reason=reason, actor=actor)
            return Decision([topup], topup_result(topup))

        return self._topup_command(
            "reject_topup", topup_id, {"reason": reason}, idempotency_key, decide
        )

    def cancel_topup(
        self,
        *,
        topup_id: UUID,
        reason: str = "",
        actor: str,
        idempotency_key: str,
    ) -> CommandResult:
        def decide() -> Decision:
            topup = self.get_topup(topup_id)
            topup.cancel(reason=reason, actor=actor)
            return Decision([topup], topup_result(topup))

        return self._topup_command(
            "cancel_topup", topup_id, {"reason": reason}, idempotency_key, decide
        )

    def mark_topup_paid(
        self,
        *,
        topup_id: UUID,
        payment_reference: str,
        actor: str,
        idempotency_key: str,
    ) -> CommandResult:
        """Record payment and credit the wallet's prepaid bucket in one transaction."""

        def decide() -> Decision:
            topup = self.get_topup(topup_id)
            wallet = cast(Wallet, self.repository.get(topup.wallet_id))
            topup.mark_paid(payment_reference=payment_reference, actor=actor)
            wallet.credit(
                topup.amount,
                bucket=CreditBucket.PREPAID,
                kind=CreditKind.TOPUP,
                counter_account=accounts.CASH_CLEARING,
                reference=f"topup:{topup.id}:{topup.invoice_number}",
                actor=actor,
            )
            return Decision([topup, wallet], topup_result(topup))

        return self._topup_command(
            "mark_topup_paid",
            topup_id,
            {"payment_reference": payment_reference},
            idempotency_key,
            decide,
        )

    def _topup_command(
        self,
        command: str,
        topup_id: UUID,
        request: dict[str, object],
        idempotency_key: str,
        decide: Callable[[], Decision],
    ) -> CommandResult:
        company_id = self.get_topup(topup_id).company_id
        return self.execute(
            scope=company_id,
            idempotency_key=idempotency_key,
            command=command,
            request={"topup_id": str(topup_id), **request},
            decide=decide,
        )

    # -- cycles and auto top-up ---------------------------------------------------------

    def start_due_cycles(self, wallet_ids: Iterable[UUID], *, now: datetime, actor: str) -> int:
        """Start the due billing cycles of ``wallet_ids``; how many cycles were started.

        Each wallet is saved on its own: a crash part-way leaves the rest for the next run. A
        concurrent run (or a usage batch) makes the save fail on the wallet's version; the loser
        re-reads and finds nothing left to do, so a boundary is started exactly once.
        """
        started = 0
        for id_ in wallet_ids:
            for attempt in range(self.retry_count_max + 1):
                wallet = cast(Wallet, self.repository.get(id_))
                count = wallet.start_due_cycles(now, actor=actor)
                if not count:
                    break
                try:
                    self.save(wallet)
                except IntegrityError:
                    self._evict([wallet])
                    time.sleep(random.uniform(0, self.retry_backoff_base_s * 2**attempt))
                    continue
                started += count
                break
        return started

    def request_auto_topup(
        self, *, wallet_id: UUID, trigger_version: int, auto_approve: bool, amount: Decimal
    ) -> CommandResult:
        """The top-up request of one ``AutoTopupTriggered`` event, exactly once: its
        idempotency keys are derived from the triggering event."""
        wallet = cast(Wallet, self.repository.get(wallet_id))
        key = f"auto-topup:{wallet_id}:{trigger_version}"
        result = self.request_topup(
            company_id=wallet.company_id,
            amount=format_amount(amount),
            currency=wallet.currency,
            note=f"auto top-up (wallet version {trigger_version})",
            pool_sender_id=wallet.pool_sender_id,
            actor=AUTO_TOPUP_ACTOR,
            idempotency_key=key,
        )
        if auto_approve:
            result = self.approve_topup(
                topup_id=UUID(result["topup_id"]),
                actor=AUTO_TOPUP_ACTOR,
                idempotency_key=f"{key}:approve",
            )
        return result

    # -- usage ----------------------------------------------------------------------------

    def wallet_for_sender(self, waba_id: str, company_id: str) -> Wallet:
        """The wallet a sender draws from, provided the sender belongs to ``company_id``."""
        try:
            registration = cast(
                SenderRegistration, self.repository.get(sender_registration_id(waba_id))
            )
        except AggregateNotFoundError:
            self._check_company_known(company_id)
            raise UnknownSender(f"sender {waba_id} is not linked to any wallet") from None
        if registration.wallet_id is None or registration.company_id != company_id:
            raise SenderNotLinked(f"sender {waba_id} is not linked to company {company_id}")
        return cast(Wallet, self.repository.get(registration.wallet_id))

    def _check_company_known(self, company_id: str) -> None:
        """Usage is routed by sender; an unknown sender of a company without a (shared)
        wallet is reported as an unknown company, which is what an operator needs to fix."""
        try:
            self.repository.get(wallet_id(check_key(company_id, "company_id")))
        except AggregateNotFoundError:
            raise UnknownCompany(f"no wallet for company {company_id}") from None

    # -- consumed positions (Kafka) --------------------------------------------------------

    def consumer_position(self, name: str) -> int | None:
        """The next offset to consume for a partition, as recorded with its deductions."""
        return self.command_store.max_tracking_id(name)

    def forget_consumer_positions(self, prefix: str) -> int:
        return self.command_store.forget_consumer_positions(prefix)

    def save_consumed(
        self,
        aggregates: Sequence[Aggregate],
        *,
        usage_keys: Sequence[tuple[str, str, str]],
        position_name: str,
        next_offset: int,
    ) -> None:
        """One transaction: the deductions, their usage keys and the consumed position."""
        self.save(
            *aggregates,
            usage_keys=usage_keys,
            consumer_position=Tracking(position_name, next_offset),
        )

    def apply_usage(self, usage: Usage, *, trust_producer_price: bool = False) -> UsageOutcome:
        """Price one usage event and deduct it from its sender's pool, exactly once."""
        for attempt in range(self.retry_count_max + 1):
            if self.command_store.select_applied_usage_keys([usage.key]):
                return UsageOutcome.DUPLICATE
            wallet = self.wallet_for_sender(usage.waba_id, usage.company_id)
            record_usage_on(wallet, usage, trust_producer_price=trust_producer_price)
            try:
                self.save(wallet, usage_keys=[(*usage.key, usage.company_id)])
            except IntegrityError:
                self._evict([wallet])
                time.sleep(random.uniform(0, self.retry_backoff_base_s * 2**attempt))
                continue
            return UsageOutcome.APPLIED
        raise ConcurrencyConflict(
            f"usage {usage.key} lost {self.retry_count_max + 1} optimistic-concurrency races"
        )

    # -- transfers ------------------------------------------------------------------------

    def transfer(
        self,
        *,
        from_company_id: str,
        to_company_id: str,
        amount: object,
        commission_rate: object = "0",
        commission_account: str = accounts.COMMISSIONS,
        note: str = "",
        actor: str,
        idempotency_key: str,
    ) -> CommandResult:
        """Debit the sender, credit the receiver net of commission, book the commission."""
        if from_company_id == to_company_id:
            raise InvalidArgument("a transfer needs two different companies")
        request = {
            "to_company_id": to_company_id,
            "amount": str(amount),
            "commission_rate": str(commission_rate),
            "commission_account": commission_account,
            "note": note,
        }

        def decide() -> Decision:
            source = self.get_wallet(from_company_id)
            target = self.get_wallet(to_company_id)
            if source.currency != target.currency:
                raise CurrencyMismatch(
                    f"cannot transfer {source.currency} into a {target.currency} wallet"
                )
            gross = parse_amount(amount, allow_zero=False)
            rate = check_commission_rate(commission_rate)
            commission = commission_of(gross, rate)
            transfer = Transfer(
                from_wallet_id=source.id,
                to_wallet_id=target.id,
                from_company_id=from_company_id,
                to_company_id=to_company_id,
                currency=source.currency,
                amount=gross,
                commission_rate=rate,
                commission=commission,
                net_amount=gross - commission,
                commission_account=check_commission_account(commission_account),
                note=check_text(note, "note", 500),
                actor=actor,
            )
            reference = f"transfer:{transfer.id}"
            source.send_transfer(gross, transfer_reference=reference, actor=actor)
            if gross - commission > 0:
                target.credit(
                    gross - commission,
                    bucket=CreditBucket.PREPAID,
                    kind=CreditKind.TRANSFER,
                    counter_account=accounts.TRANSFERS_IN_TRANSIT,
                    reference=reference,
                    actor=actor,
                )
            return Decision(
                [transfer, source, target],
                {
                    "transfer_id": str(transfer.id),
                    "amount": format_amount(gross),
                    "commission": format_amount(commission),
                    "net_amount": format_amount(gross - commission),
                },
            )

        return self.execute(
            scope=from_company_id,
            idempotency_key=idempotency_key,
            command="transfer",
            request=request,
            decide=decide,
        )


def price_usage(
    wallet: Wallet, usage: Usage, *, trust_producer_price: bool
) -> tuple[Decimal, Decimal]:
    """(unit price, amount): ``data.unit_price`` when given, else the rate card. A supplied
    price that disagrees with the rate card is refused unless the producer is trusted."""
    if usage.currency is not None and usage.currency != wallet.currency:
        raise CurrencyMismatch(
            f"usage priced in {usage.currency} for a wallet kept in {wallet.currency}"
        )
    card_price = wallet.rate_card.get(usage.category)
    if usage.unit_price is None:
        return card_price or Decimal(0), wallet.price_of(usage.category, usage.units)
    supplied = parse_amount(usage.unit_price, field="unit_price")
    if not trust_producer_price and supplied != card_price:
        card = "no price" if card_price is None else format_amount(card_price)
        raise PriceMismatch(
            f"producer priced {usage.category} at {format_amount(supplied)} per unit, "
            f"the rate card says {card}"
        )
    return supplied, parse_amount(supplied * usage.units, field="amount")


def record_usage_on(wallet: Wallet, usage: Usage, *, trust_producer_price: bool) -> None:
    """Apply one usage event to ``wallet`` in memory (the caller saves)."""
    reference = f"{usage.source}#{usage.event_id}"
    if not usage.billable:
        wallet.record_failed_usage(
            usage_reference=reference,
            sender_id=usage.waba_id,
            conversation_id=usage.conversation_id,
            category=usage.category,
            units=usage.units,
            actor="ingestion",
        )
        return
    unit_price, amount = price_usage(wallet, usage, trust_producer_price=trust_producer_price)
    wallet.record_usage(
        amount,
        usage_reference=reference,
        sender_id=usage.waba_id,
        conversation_id=usage.conversation_id,
        category=usage.category,
        units=usage.units,
        unit_price=unit_price,
        actor="ingestion",
    )


def configure_policies(
    wallet: Wallet,
    *,
    alerts: Mapping[str, Any] | None,
    auto_topup: Mapping[str, Any] | None,
    spending_caps: Mapping[str, Mapping[str, Any]] | None,
    cycle: Mapping[str, Any] | None,
    actor: str,
) -> None:
    """Apply the policy sections of a configure request to ``wallet`` (each one an event)."""
    if alerts is not None:
        _check_fields(alerts, {"low_balance_threshold", "low_balance_percent", "burn_limit_24h"})
        wallet.configure_alerts(
            low_balance_threshold=_optional_amount(alerts.get("low_balance_threshold")),
            low_balance_percent=parse_amount(
                alerts.get("low_balance_percent", LOW_BALANCE_PERCENT_DEFAULT),
                field="low_balance_percent",
            ),
            burn_limit_24h=_optional_amount(alerts.get("burn_limit_24h")),
            actor=actor,
        )
    if auto_topup is not None:
        _check_fields(auto_topup, {"enabled", "trigger_balance", "amount", "auto_approve"})
        wallet.configure_auto_topup(
            enabled=_flag(auto_topup.get("enabled", True), "enabled"),
            trigger_balance=parse_amount(
                auto_topup.get("trigger_balance", "0"), field="trigger_balance", allow_negative=True
            ),
            amount=parse_amount(auto_topup.get("amount", "0"), field="amount"),
            auto_approve=_flag(auto_topup.get("auto_approve", False), "auto_approve"),
            actor=actor,
        )
    if spending_caps is not None:
        wallet.change_spending_caps({k: dict(v) for k, v in spending_caps.items()}, actor=actor)
    if cycle is not None:
        _check_fields(cycle, {"anchor_day", "anchor_time", "time_zone"})
        wallet.change_cycle_anchor(
            check_cycle_anchor(
                cycle.get("anchor_day", 1),
                cycle.get("anchor_time", "00:00"),
                cycle.get("time_zone", "UTC"),
            ),
            actor=actor,
        )


def _check_fields(section: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = set(section) - allowed
    if unknown:
        raise InvalidArgument(f"unknown setting(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _optional_amount(value: object) -> Decimal | None:
    return None if value is None else parse_amount(value)


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be true or false, got {value!r}")
    return value


def _plain(section: Mapping[str, Any] | None) -> object:
    """A request section as JSON-able data for the idempotency fingerprint."""
    return None if section is None else json.loads(json.dumps(section, default=str))


def topup_result(topup: TopupRequest) -> CommandResult:
    return {
        "topup_id": str(topup.id),
        "company_id": topup.company_id,
        "status": topup.status.value,
        "invoice_number": topup.invoice_number,
    }


def new_invoice_number(company_id: str, now: datetime | None = None) -> str:
    """``TOP-{yyyyMM}-{company}-{suffix}``; uniqueness is enforced by an InvoiceNumberClaim."""
    month = (now or datetime.now(UTC)).strftime("%Y%m")
    return f"TOP-{month}-{company_id}-{secrets.token_hex(4).upper()}"


def parse_mode(mode: object) -> PoolMode:
    return parse_enum(PoolMode, mode, "mode")


def parse_enum(enum: type[E], value: object, name: str) -> E:
    try:
        return enum(str(value))
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise InvalidArgument(f"{name} must be one of {choices}, got {value!r}") from None


def check_commission_account(name: str) -> str:
    if name not in (accounts.COMMISSIONS, accounts.PROMOTIONS, accounts.REVENUE_USAGE):
        raise InvalidArgument(f"commission_account {name!r} is not a commission account")
    return name
