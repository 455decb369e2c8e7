"""``LedgerApplication``: the event-sourced application every use case runs on.

It owns what is about the event store (snapshots, transcodings, loading aggregates by business
key, the consumed Kafka positions) and runs commands through the one idempotent runner
(``handle``). The keyword methods (``ledger.open_wallet(...)``) are the commands' constructors
bound to ``handle``, for callers that hold plain values (tests, scripts, the CLI); the HTTP API
builds the same commands from its request models.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Concatenate, ParamSpec, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    Tracking,
    Transcoder,
    Transcoding,
)

from ledger_service.domain.adjustment import Adjustment
from ledger_service.domain.credits import CreditRates
from ledger_service.domain.entries import Debited
from ledger_service.domain.errors import (
    AdjustmentNotFound,
    PaymentOrderNotFound,
    SenderNotLinked,
    TopupNotFound,
    UnknownCompany,
    UnknownSender,
    WalletAlreadyExists,
    WalletNotFound,
)
from ledger_service.domain.ids import (
    check_key,
    sender_registration_id,
    topup_velocity_id,
    wallet_id,
)
from ledger_service.domain.packs import CATALOG_ID, PackCatalog
from ledger_service.domain.payment_order import PaymentOrder
from ledger_service.domain.refund import Refund
from ledger_service.domain.registry import SenderRegistration
from ledger_service.domain.risk import RiskRules, TopupVelocity
from ledger_service.domain.topup import TopupRequest
from ledger_service.domain.usage import Usage, UsageOutcome
from ledger_service.domain.wallet import Wallet
from ledger_service.service import (
    adjustments,
    cycles,
    grants,
    holds,
    packs,
    payments,
    refunds,
    topups,
    transfers,
    usage,
    wallets,
)
from ledger_service.service.event_encoding import FastJSONTranscoder
from ledger_service.service.payments import PaymentProvider
from ledger_service.service.runner import (
    Command,
    CommandStore,
    UsageKey,
    run_command,
    translated_store_errors,
)
from ledger_service.service.transcodings import POLICY_TRANSCODINGS

P = ParamSpec("P")
R = TypeVar("R")


def command_method(
    command_type: Callable[P, Command[R]],
) -> Callable[Concatenate[LedgerApplication, P], R]:
    """A method that builds ``command_type`` from its keyword arguments and handles it."""

    def method(self: LedgerApplication, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.handle(command_type(*args, **kwargs))

    method.__doc__ = command_type.__doc__
    return method


class SetAsSortedList(Transcoding):
    """Sets (a wallet's linked senders) in snapshots, sorted so equal states encode equally."""

    type = set
    name = "set_sorted"

    def encode(self, obj: set[Any]) -> list[Any]:
        return sorted(obj)

    def decode(self, data: list[Any]) -> set[Any]:
        return set(data)


def snapshot_interval(base: int, items: int) -> int:
    """``base``, doubled until it is at least ``items``: a wallet carrying many holds is
    snapshotted less often, so snapshots cost a bounded amount per event (a snapshot of 5,000
    holds every 200 events was three quarters of a hot wallet's hold time). Doubling keeps the
    intervals multiples of each other, so one is due at least every ``interval`` events while
    the size moves. A cold load replays at most that many events."""
    interval = base
    while interval < items:
        interval *= 2
    return interval


class LedgerApplication(Application[UUID]):
    name = "Ledger"
    is_snapshotting_enabled = True
    # Wallets take many events (one per message); a snapshot every 200 bounds a cold load
    # (a restarted consumer reloads every active wallet) at little cost to ingestion.
    snapshotting_intervals = {Wallet: 200}

    retry_count_max = 8
    adjustment_approval_threshold = Decimal(0)
    """Adjustments above this amount wait for a second operator (the service's setting)."""
    topup_tax_percent = Decimal(0)
    topup_fee_percent = Decimal(0)
    """Tax and platform fee on top-up invoices, in percent of the amount (the settings)."""
    topup_minimums: dict[str, Decimal] = {}
    """Currency -> the smallest top-up accepted."""
    credit_rates: CreditRates = {}
    """Units of account and what a unit of each currency buys of them (the setting)."""
    risk_rules = RiskRules()
    """What holds a top-up request for review (the settings; none by default)."""
    transfer_commission_rate = Decimal(0)
    """The commission on tenant transfers, a fraction (the setting)."""
    transfer_agency_company_id: str | None = None
    """Whose wallet is paid tenant transfers' commission (None: the commissions account)."""
    payment_provider: PaymentProvider | None = None
    """Opens card checkouts (set by the composition root); None: invoice top-ups only."""

    # -- commands -------------------------------------------------------------------------

    def handle(self, command: Command[R]) -> R:
        """Run ``command`` exactly once per idempotency key (see ``service.runner``)."""
        return run_command(self, command)

    open_wallet = command_method(wallets.OpenWallet)
    link_sender = command_method(wallets.LinkSender)
    unlink_sender = command_method(wallets.UnlinkSender)
    configure_wallet = command_method(wallets.ConfigureWallet)
    credit_wallet = command_method(wallets.CreditWallet)
    request_topup = command_method(topups.RequestTopup)
    approve_topup = command_method(topups.ApproveTopup)
    reject_topup = command_method(topups.RejectTopup)
    release_topup = command_method(topups.ReleaseTopup)
    cancel_topup = command_method(topups.CancelTopup)
    mark_topup_paid = command_method(topups.MarkTopupPaid)
    create_payment_order = command_method(topups.CreatePaymentOrder)
    apply_payment_event = command_method(payments.ApplyPaymentEvent)
    define_pack = command_method(packs.DefinePack)
    retire_pack = command_method(packs.RetirePack)
    transfer = command_method(transfers.TransferMoney)
    send_transfer = command_method(transfers.SendTransfer)
    request_adjustment = command_method(adjustments.RequestAdjustment)
    approve_adjustment = command_method(adjustments.ApproveAdjustment)
    reject_adjustment = command_method(adjustments.RejectAdjustment)
    refund_usage = command_method(refunds.RefundUsage)
    issue_grant = command_method(grants.IssueGrant)
    void_grant = command_method(grants.VoidGrant)
    place_hold = command_method(holds.PlaceHold)
    release_hold = command_method(holds.ReleaseHold)

    def request_auto_topup(
        self, *, wallet_id: UUID, trigger_version: int, auto_approve: bool, amount: Decimal
    ) -> topups.TopupRequested | topups.TopupChanged:
        return topups.request_auto_topup(
            self,
            wallet_id=wallet_id,
            trigger_version=trigger_version,
            auto_approve=auto_approve,
            amount=amount,
        )

    def start_due_cycles(self, wallet_ids: Iterable[UUID], *, now: datetime, actor: str) -> int:
        return cycles.start_due_cycles(self, wallet_ids, now=now, actor=actor)

    def apply_usage(
        self,
        event: Usage,
        *,
        trust_producer_price: bool = False,
        refund_failed_usage: bool = True,
    ) -> UsageOutcome:
        """Price one usage event and deduct it from its sender's pool, exactly once: the
        batch path with a batch of one, raising the ledger's reason instead of refusing."""
        deductions = usage.UsageDeductions(
            self,
            trust_producer_price=trust_producer_price,
            refund_failed_usage=refund_failed_usage,
            retry_count_max=self.retry_count_max,
        )
        outcome = deductions.apply([(0, event)], position=None, refuse=_raise_refusal)
        if outcome.refunded:
            return UsageOutcome.REFUNDED
        return UsageOutcome.DUPLICATE if outcome.duplicates else UsageOutcome.APPLIED

    # -- the event store ------------------------------------------------------------------

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """Snapshot the saved in-memory aggregate instead of re-reading it from the store.

        The library's default reloads the aggregate (replaying up to a whole interval of events
        from the database) for every snapshot, which cost a third of ingestion time. Right after
        a successful save the in-memory state *is* the recorded state at ``aggregate.version``.
        (Overrides a private hook of the exactly pinned eventsourcing version.)
        """
        if self.snapshots is None:
            return
        # Per aggregate, not per event: the interval (a wallet's depends on its size) once per
        # wallet. It saved the versions from its first event here to its version now.
        first: dict[UUID, int] = {}
        for domain_event in processing_event.events:
            first.setdefault(domain_event.originator_id, domain_event.originator_version)
        for aggregate_id, first_version in first.items():
            aggregate = processing_event.aggregates.get(aggregate_id)
            if aggregate is None:
                continue
            interval = self.snapshotting_intervals.get(type(aggregate))
            if interval and isinstance(aggregate, Wallet):
                interval = snapshot_interval(interval, aggregate.snapshot_items)
            if interval and aggregate.version // interval > (first_version - 1) // interval:
                self.snapshots.put([Snapshot.take(cast(Aggregate, aggregate))])  # one was due

    def construct_transcoder(self) -> Transcoder:
        transcoder = FastJSONTranscoder()  # the library's JSON, written faster (event_encoding)
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(SetAsSortedList())
        for transcoding in POLICY_TRANSCODINGS:  # a wallet's policy values, in its snapshots
            transcoder.register(transcoding)

    @property
    def command_store(self) -> CommandStore:
        return cast(CommandStore, self.recorder)

    def evict(self, ids: Iterable[UUID]) -> None:
        """Drop cached aggregates that may hold unsaved events or be stale."""
        cache = self.repository.cache
        if cache is None:
            return
        for id_ in ids:
            with contextlib.suppress(KeyError):
                cache.get(id_, evict=True)

    def fast_forward(self, aggregates: Iterable[Aggregate]) -> None:
        """Bring aggregates held in memory up to date with the events saved since their
        versions, in one query for all of them."""
        by_id = {aggregate.id: aggregate for aggregate in aggregates}
        versions = {id_: aggregate.version for id_, aggregate in by_id.items()}
        for stored in self.command_store.select_events_after(versions):
            event = cast(Aggregate.Event, self.mapper.to_domain_event(stored))
            event.mutate(by_id[event.originator_id])

    # -- loading --------------------------------------------------------------------------

    def get_wallet(self, company_id: str, pool_sender_id: str | None = None) -> Wallet:
        check_key(company_id, "company_id")
        try:
            return cast(Wallet, self.repository.get(wallet_id(company_id, pool_sender_id)))
        except AggregateNotFoundError:
            pool = f" (pool of sender {pool_sender_id})" if pool_sender_id else ""
            raise WalletNotFound(f"no wallet for company {company_id}{pool}") from None

    def get_wallet_by_id(self, id_: UUID) -> Wallet:
        return cast(Wallet, self.repository.get(id_))

    def topup_velocity(self, company_id: str) -> TopupVelocity:
        """The company's recent top-up requests, started on its first."""
        try:
            return cast(TopupVelocity, self.repository.get(topup_velocity_id(company_id)))
        except AggregateNotFoundError:
            return TopupVelocity(company_id=company_id)

    def get_topup(self, topup_id: UUID) -> TopupRequest:
        try:
            return cast(TopupRequest, self.repository.get(topup_id))
        except AggregateNotFoundError:
            raise TopupNotFound(f"no top-up request {topup_id}") from None

    def topup_as_of(self, topup_id: UUID, version: int) -> TopupRequest:
        """The top-up as its event at ``version`` left it, with the invoice's tax and fee when
        they were priced in the same save (``Priced`` follows ``Invoiced`` directly)."""
        with translated_store_errors():
            topup = cast(TopupRequest, self.repository.get(topup_id, version=version))
            following = list(self.events.get(topup_id, gt=version, lte=version + 1))
        if following and isinstance(following[0], TopupRequest.Priced):
            following[0].mutate(topup)
        return topup

    def packs(self) -> PackCatalog:
        """The pack catalog (empty before an operator defines a pack)."""
        try:
            return cast(PackCatalog, self.repository.get(CATALOG_ID))
        except AggregateNotFoundError:
            return PackCatalog()

    def get_payment_order(self, order_id: UUID) -> PaymentOrder:
        try:
            return cast(PaymentOrder, self.repository.get(order_id))
        except AggregateNotFoundError:
            raise PaymentOrderNotFound(f"no payment order {order_id}") from None

    def get_adjustment(self, adjustment_id: UUID) -> Adjustment:
        try:
            return cast(Adjustment, self.repository.get(adjustment_id))
        except AggregateNotFoundError:
            raise AdjustmentNotFound(f"no adjustment {adjustment_id}") from None

    def get_refund(self, refund_id: UUID) -> Refund | None:
        try:
            return cast(Refund, self.repository.get(refund_id))
        except AggregateNotFoundError:
            return None

    def refund_exists(self, refund_id: UUID) -> bool:
        """Asked of the store, never a cache: another process may have refunded."""
        with translated_store_errors():
            return bool(self.recorder.select_events(refund_id, limit=1))

    def usage_charge(self, key: tuple[str, str]) -> Debited | None:
        """The wallet entry that charged the usage event ``key`` (CloudEvents source, id);
        None when it is unknown or charged nothing."""
        with translated_store_errors():
            charge = self.command_store.select_usage_charges([key]).get(key)
        return None if charge is None else self.charge_entry(charge)

    def charge_entry(self, charge: UsageKey) -> Debited | None:
        if charge.wallet_id is None or charge.wallet_version is None:
            return None
        version = charge.wallet_version
        found = self.events.get(charge.wallet_id, gt=version - 1, lte=version)
        entry = next(iter(found), None)
        return entry if isinstance(entry, Debited) else None

    def get_sender_registration(self, waba_id: str) -> SenderRegistration:
        """The sender's registration, or a new (unsaved) one for a sender never seen."""
        try:
            return cast(SenderRegistration, self.repository.get(sender_registration_id(waba_id)))
        except AggregateNotFoundError:
            return SenderRegistration(waba_id=waba_id)

    def check_wallet_absent(self, id_: UUID, company_id: str) -> None:
        try:
            self.repository.get(id_)
        except AggregateNotFoundError:
            return
        raise WalletAlreadyExists(f"company {company_id} already has that wallet")

    def link(self, wallet: Wallet, waba_id: str, actor: str) -> SenderRegistration:
        """Link ``waba_id`` to ``wallet`` on both sides (the caller saves both)."""
        registration = self.get_sender_registration(waba_id)
        wallet.link_sender(waba_id, actor=actor)
        registration.assign(wallet_id=wallet.id, company_id=wallet.company_id, actor=actor)
        return registration

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
        return self.get_wallet_by_id(registration.wallet_id)

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
        with translated_store_errors():
            return self.command_store.max_tracking_id(name)

    def forget_consumer_positions(self, prefix: str) -> int:
        with translated_store_errors():
            return self.command_store.forget_consumer_positions(prefix)

    def save_consumed(
        self,
        aggregates: Sequence[Aggregate],
        *,
        usage_keys: Sequence[UsageKey | tuple[str, str, str]],
        position_name: str | None,
        next_offset: int,
    ) -> None:
        """One transaction: the deductions, their usage keys and the consumed position. No
        notification ids come back (nothing here reads them): a batch's rows and objects
        less to make."""
        position = None if position_name is None else Tracking(position_name, next_offset)
        # ``self.save(*aggregates, **kwargs)`` without its two checks of each aggregate against
        # runtime protocols: 12 us per aggregate, and a batch saves one per wallet it charged
        # (hundreds). The same steps otherwise (private hooks of the pinned library version).
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        for aggregate in aggregates:
            processing.events.extend(aggregate.collect_events())
            processing.aggregates[aggregate.id] = aggregate
        processing.saved_kwargs.update(
            usage_keys=usage_keys, consumer_position=position, returning_ids=False
        )
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)

    def advance_consumer_position(self, name: str, *, next_offset: int) -> None:
        """Move a position past a record that changed nothing (refused)."""
        with contextlib.suppress(IntegrityError):  # someone else moved past it: fine
            self.save_consumed([], usage_keys=[], position_name=name, next_offset=next_offset)


def _raise_refusal(refusal: usage.Refusal) -> None:
    if refusal.error is not None:
        raise refusal.error
    raise AssertionError(f"a decoded usage event was refused without a reason: {refusal}")
