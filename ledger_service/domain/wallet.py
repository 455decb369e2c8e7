"""The Wallet aggregate: one company's balance pool and every rule about moving money in it.

Buckets and the two derived figures (also defined in README.md):

* ``included``     - this cycle's included quota left (>= 0);
* ``granted``      - what is left of the active credit grants (>= 0; see ``grants``);
* ``prepaid``      - paid-for money left (>= 0);
* ``postpaid_used`` - credit drawn on the postpaid limit, including any overage (>= 0);
* ``balance   = included + granted + prepaid - postpaid_used``;
* ``available = balance + postpaid_limit - held`` (negative only after overage), where
  ``held`` is what active holds reserve (see ``holds``).

Usage drains included -> grants -> prepaid -> postpaid credit. Usage is a fact, not a request:
beyond the postpaid limit the remainder is still recorded, as ``overage``. Credits to
``prepaid`` first repay drawn postpaid credit, so a wallet never holds prepaid money and debt at
the same time.

Command methods check first (``check_*``) and only then trigger an event; the event methods
(underscore-prefixed, decorated with ``@event``) hold no rules, so replay never re-decides.

This module holds the money core. The senders and settings (``wallet_setup``) and the policies
(``wallet_policies``) are methods of this class too, written in those modules and assigned in
the class body; the money events and vocabulary are in ``entries``, the other events are
declared in ``wallet_events``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger_service.domain import accounts, entries, wallet_events
from ledger_service.domain import wallet_grants as grants
from ledger_service.domain import wallet_holds as holds
from ledger_service.domain import wallet_policies as policies
from ledger_service.domain import wallet_setup as setup
from ledger_service.domain import wallet_transfers as transfers
from ledger_service.domain.chain import GENESIS_HASH, entry_hash
from ledger_service.domain.entries import (
    CreditBucket,
    CreditKind,
    DebitKind,
    DebitSplit,
    check_counter_account,
    split_debit,
)
from ledger_service.domain.errors import InsufficientFunds
from ledger_service.domain.grants import Grant
from ledger_service.domain.holds import Hold
from ledger_service.domain.ids import wallet_id
from ledger_service.domain.money import ZERO, canonical, parse_amount
from ledger_service.domain.policies import AlertSettings, AutoTopup, CycleAnchor, SpendingCap
from ledger_service.domain.triggers import BurnWindow, SpendingDay
from ledger_service.domain.wallet_setup import PoolMode

# Re-exported: the wallet's vocabulary, where callers have always imported it from.
__all__ = ["CreditBucket", "CreditKind", "DebitKind", "DebitSplit", "PoolMode", "Wallet"]


class Wallet(Aggregate):
    """A company's balance pool (or, in legacy ``per_sender`` mode, one sender's pool)."""

    # The two money events, the ledger's core contract; the library redefines them here as
    # Wallet.Credited and Wallet.Debited (the stored topics ...domain.wallet:Wallet.Credited).
    Credited = entries.Credited
    Debited = entries.Debited
    # Every other event, declared in wallet_events and adopted the same way.
    Opened = wallet_events.Opened
    SenderLinked = wallet_events.SenderLinked
    SenderUnlinked = wallet_events.SenderUnlinked
    PoolMerged = wallet_events.PoolMerged
    PostpaidLimitChanged = wallet_events.PostpaidLimitChanged
    RateCardChanged = wallet_events.RateCardChanged
    TaxRateChanged = wallet_events.TaxRateChanged
    TransferLimitChanged = wallet_events.TransferLimitChanged
    IncludedQuotaChanged = wallet_events.IncludedQuotaChanged
    FailedUsageRecorded = wallet_events.FailedUsageRecorded
    AlertSettingsChanged = wallet_events.AlertSettingsChanged
    AutoTopupChanged = wallet_events.AutoTopupChanged
    SpendingCapsChanged = wallet_events.SpendingCapsChanged
    CycleAnchorChanged = wallet_events.CycleAnchorChanged
    CycleStarted = wallet_events.CycleStarted
    AlertRaised = wallet_events.AlertRaised
    TriggersRearmed = wallet_events.TriggersRearmed
    AutoTopupTriggered = wallet_events.AutoTopupTriggered
    GrantIssued = wallet_events.GrantIssued
    GrantClosed = wallet_events.GrantClosed
    HoldPlaced = wallet_events.HoldPlaced
    HoldClosed = wallet_events.HoldClosed

    # Snapshots: version 2 added policies (cycles, alerts, caps, auto top-up) as plain dicts,
    # version 3 holds them as typed values, version 4 added grants, version 5 holds, version 6
    # a tax rate, version 7 the warnings given this cycle, version 8 the daily transfer limit
    # and what was sent today, version 9 whether a legacy pool was merged. Older snapshots are
    # upcast (events version themselves: ``wallet_events``).
    class_version = 9
    upcast_v1_v2 = staticmethod(policies.upcast_v1_v2)
    upcast_v2_v3 = staticmethod(policies.upcast_v2_v3)
    upcast_v3_v4 = staticmethod(policies.upcast_v3_v4)
    upcast_v4_v5 = staticmethod(policies.upcast_v4_v5)
    upcast_v5_v6 = staticmethod(policies.upcast_v5_v6)
    upcast_v6_v7 = staticmethod(policies.upcast_v6_v7)
    upcast_v7_v8 = staticmethod(transfers.upcast_v7_v8)
    upcast_v8_v9 = staticmethod(setup.upcast_v8_v9)

    @staticmethod
    def create_id(company_id: str, pool_sender_id: str | None = None, **_: Any) -> UUID:
        return wallet_id(company_id, pool_sender_id)

    @classmethod
    def open(
        cls,
        *,
        company_id: str,
        currency: str,
        mode: PoolMode,
        postpaid_limit: Decimal,
        included_quota: Decimal,
        rate_card: dict[str, Decimal],
        actor: str,
        pool_sender_id: str | None = None,
        at: datetime | None = None,
    ) -> Wallet:
        """``at``: when the wallet opened (its cycle starts from there); default now.
        Event methods take ``timestamp``, the event's own (None: the library's clock)."""
        setup.check_pool(company_id, mode, pool_sender_id)
        return cls(
            company_id=company_id,
            currency=currency,
            mode=mode.value,
            pool_sender_id=pool_sender_id,
            postpaid_limit=parse_amount(postpaid_limit, field="postpaid_limit"),
            included_quota=parse_amount(included_quota, field="included_quota"),
            rate_card=setup.check_rate_card(rate_card),
            actor=actor,
            timestamp=at,
        )

    @event(Opened)
    def __init__(
        self,
        company_id: str,
        currency: str,
        mode: str,
        pool_sender_id: str | None,
        postpaid_limit: Decimal,
        included_quota: Decimal,
        rate_card: dict[str, Decimal],
        actor: str,
        timestamp: datetime | None,
    ) -> None:
        self.company_id = company_id
        self.currency = currency
        self.mode = PoolMode(mode)
        self.pool_sender_id = pool_sender_id
        self.postpaid_limit = postpaid_limit
        self.included_quota = included_quota
        self.rate_card = dict(rate_card)
        self.tax_percent: Decimal | None = None
        """Tax on this wallet's top-up invoices, in percent; None: the service's default."""
        self.transfer_limit: Decimal | None = None
        """The most tenant transfers may send per day (None: no limit); see wallet_transfers."""
        self.transfer_day = ""
        """The day (wallet time zone) ``transferred_today`` counts; empty before any transfer."""
        self.transfer_day_ends_at: datetime | None = None
        self.transferred_today = ZERO
        self.senders: set[str] = set()
        self.merged_into: UUID | None = None
        """A legacy per-sender pool emptied into this shared pool (``domain.pool_migration``)."""
        self.included = ZERO
        self.prepaid = ZERO
        self.postpaid_used = ZERO
        self.overage_total = ZERO
        self.grants: dict[str, Grant] = {}
        """Every grant ever issued, by id (closed ones too: a refund may give one money back)."""
        self.granted = ZERO
        self.holds: dict[str, Hold] = {}
        """The active holds, by reference (the CloudEvents id of the message each is for)."""
        self.held = ZERO
        self.entry_hash = GENESIS_HASH
        # Policies (see wallet_policies.py): typed values, replaced by their events.
        self.cycle_anchor = CycleAnchor()
        self.cycle_start = self.cycle_anchor.cycle_start_at(self.created_on)
        self.cycle_funded = ZERO
        self.alert_settings = AlertSettings()
        self.auto_topup = AutoTopup()
        self.spending_caps: dict[str, SpendingCap] = {}
        self.triggered: list[str] = []
        """Alerts (and the auto top-up trigger) that fired and have not re-armed yet."""
        self.warned_this_cycle: list[str] = []
        """Warnings raised since the cycle started (what ``renotify: once_per_cycle`` reads)."""
        self.blocked: dict[str, str] = {}
        """Category -> the day its spending cap was reached (blocked for that day)."""
        self.spend_day = SpendingDay()
        self.burn_window = BurnWindow()

    def collect_events(self) -> list[Any]:
        """The library's, in linear time: it pops the pending events one by one from the front
        of the list, quadratic in their number, and a hot wallet saves thousands per batch."""
        collected = list(self._pending_events)
        self._pending_events.clear()
        return collected

    # -- derived figures ------------------------------------------------------------------

    @property
    def balance(self) -> Decimal:
        return canonical(self.included + self.granted + self.prepaid - self.postpaid_used)

    @property
    def available(self) -> Decimal:
        return canonical(self.balance + self.postpaid_limit - self.held)

    @property
    def account(self) -> str:
        return accounts.wallet_account(self.id)

    @property
    def snapshot_items(self) -> int:
        """How many holds and grants a snapshot of the wallet carries: what makes one cost more
        than a few microseconds (a pool with thousands of active holds)."""
        return len(self.holds) + len(self.grants)

    # -- senders and settings, written in wallet_setup.py ---------------------------------
    # Assigned, not inherited: the library defines an aggregate's events from the @event
    # methods in its own class body, which keeps their topics ...domain.wallet:Wallet.<Event>.

    link_sender = setup.link_sender
    _sender_linked = setup._sender_linked
    unlink_sender = setup.unlink_sender
    _sender_unlinked = setup._sender_unlinked
    check_sender_linked = setup.check_sender_linked
    _pool_merged = setup._pool_merged
    change_postpaid_limit = setup.change_postpaid_limit
    _postpaid_limit_changed = setup._postpaid_limit_changed
    change_tax_rate = setup.change_tax_rate
    _tax_rate_changed = setup._tax_rate_changed
    change_rate_card = setup.change_rate_card
    _rate_card_changed = setup._rate_card_changed
    change_included_quota = setup.change_included_quota
    _included_quota_changed = setup._included_quota_changed
    price_of = setup.price_of
    record_failed_usage = setup.record_failed_usage
    _failed_usage_recorded = setup._failed_usage_recorded

    # -- money movements ------------------------------------------------------------------

    def credit(
        self,
        amount: Decimal,
        *,
        bucket: CreditBucket,
        kind: CreditKind,
        counter_account: str,
        reference: str,
        actor: str,
        evaluate_triggers: bool = True,
        drawn: dict[str, Decimal] | None = None,
        grant_id: str | None = None,
    ) -> None:
        """``evaluate_triggers=False``: the caller evaluates once after several entries.
        ``drawn``: for ``CreditBucket.DRAWN``, the split of the debit being given back;
        ``grant_id``: for ``CreditBucket.GRANTS``, the grant credited."""
        amount = parse_amount(amount, allow_zero=False)
        check_counter_account(counter_account)
        split = entries.split_credit(
            amount, bucket, postpaid_used=self.postpaid_used, drawn=drawn, grant_id=grant_id
        )
        self._credited(
            **self._checked_and_chained(
                {
                    "amount": amount,
                    "bucket": bucket.value,
                    "split": split,
                    "kind": kind.value,
                    "counter_account": counter_account,
                    "reference": reference,
                    "actor": actor,
                },
                sign=1,
            )
        )
        if bucket is CreditBucket.DRAWN:
            self.retake_closed_remainders(actor=actor)
        if evaluate_triggers:
            self._evaluate_triggers()

    def _checked_and_chained(self, entry: dict[str, Any], *, sign: int) -> dict[str, Any]:
        """The entry, its invariants checked (``entries.check_entry``), plus its link in the
        wallet's hash chain (tamper evidence)."""
        entries.check_entry(
            entry["amount"],
            entry["split"],
            sign=sign,
            included=self.included,
            prepaid=self.prepaid,
            postpaid_used=self.postpaid_used,
            grants=self.grants,
        )
        return {**entry, "entry_hash": entry_hash(self.entry_hash, self.version + 1, entry)}

    @event(Credited)
    def _credited(
        self,
        amount: Decimal,
        bucket: str,
        split: dict[str, Decimal],
        kind: str,
        counter_account: str,
        reference: str,
        actor: str,
        entry_hash: str,
    ) -> None:
        self.entry_hash = entry_hash
        self.included += split.get("included", ZERO)
        self.prepaid += split.get("prepaid", ZERO)
        self.postpaid_used -= split.get("postpaid", ZERO)
        self.cycle_funded += amount
        if self.grants:
            grants.apply_grant_parts(self, split, 1)

    def record_usage(
        self,
        amount: Decimal,
        *,
        usage_reference: str,
        sender_id: str | None,
        conversation_id: str | None,
        category: str,
        units: int,
        unit_price: Decimal,
        actor: str,
        at: datetime | None = None,
    ) -> DebitSplit:
        """Deduct priced usage. Never refused for lack of funds: beyond credit it is overage.
        ``at``: when it was used (daily caps and the burn window count it then); default now.
        ``sender_id`` None: not a message but a feature consumed through the API
        (``domain.consumption``, which does its own refusing)."""
        if sender_id is not None:
            self.check_sender_linked(sender_id)
        amount = parse_amount(amount)
        split = split_debit(
            amount,
            included=self.included,
            prepaid=self.prepaid,
            postpaid_used=self.postpaid_used,
            postpaid_limit=self.postpaid_limit,
            grants=self.grants.values() if self.granted else (),
        )
        self._debit_entry(
            amount,
            split,
            kind=DebitKind.USAGE,
            counter_account=accounts.REVENUE_USAGE,
            reference=usage_reference,
            actor=actor,
            sender_id=sender_id,
            conversation_id=conversation_id,
            category=category,
            units=units,
            unit_price=unit_price,
            at=at,
        )
        self._evaluate_triggers(category)
        return split

    def send_transfer(self, amount: Decimal, *, transfer_reference: str, actor: str) -> None:
        """Transfers move paid-for money only: never included quota or postpaid credit."""
        amount = parse_amount(amount, allow_zero=False)
        if amount > self.prepaid:
            raise InsufficientFunds(
                f"transfer of {amount} exceeds the prepaid balance {self.prepaid} "
                f"of {self.company_id}"
            )
        self._debit_entry(
            amount,
            DebitSplit(ZERO, amount, ZERO, ZERO),
            kind=DebitKind.TRANSFER,
            counter_account=accounts.TRANSFERS_IN_TRANSIT,
            reference=transfer_reference,
            actor=actor,
        )
        self._evaluate_triggers()

    def _debit_entry(
        self,
        amount: Decimal,
        split: DebitSplit,
        *,
        kind: DebitKind,
        counter_account: str,
        reference: str,
        actor: str,
        sender_id: str | None = None,
        conversation_id: str | None = None,
        category: str | None = None,
        units: int = 0,
        unit_price: Decimal | None = None,
        at: datetime | None = None,
    ) -> None:
        """Only usage names a sender, conversation, category, units and unit price."""
        parts = split.as_dict()
        entry = self._checked_and_chained(
            {
                "amount": amount,
                "split": parts,
                "kind": kind.value,
                "counter_account": counter_account,
                "reference": reference,
                "sender_id": sender_id,
                "conversation_id": conversation_id,
                "category": category,
                "units": units,
                "unit_price": unit_price,
                "actor": actor,
            },
            sign=-1,
        )
        self._trigger_debited(entry, at)

    def _trigger_debited(self, entry: dict[str, Any], timestamp: datetime | None) -> None:
        """``self.trigger_event(Debited, **entry, timestamp=timestamp)``, written out for the
        one event of every message billed. The library's generic steps (matching the fields to
        ``_debited``'s signature twice, checking the version it has just computed, building the
        frozen event field by field) were a third of the time to record a usage. Same event
        (fields in the class's order), same effects in the same order: ``_debited``'s body,
        ``Debited.apply``, the version and time, the pending list. On replay the library
        applies the stored event through ``_debited`` as always;
        ``tests/unit/test_wallet_debit_event.py`` holds the two ways equal."""
        cls = type(self).Debited
        if timestamp is None:
            timestamp = cls.create_timestamp()
        debited = object.__new__(cls)
        state = {"originator_id": self.id, "originator_version": self.version + 1}
        state["timestamp"] = timestamp
        state.update(entry)
        object.__setattr__(debited, "__dict__", state)
        self._apply_debit(entry["split"], entry["entry_hash"])
        entries.Debited.apply(debited, self)
        self.version = debited.originator_version
        self.modified_on = timestamp
        self._pending_events.append(debited)

    @event(Debited)
    def _debited(
        self,
        amount: Decimal,
        split: dict[str, Decimal],
        kind: str,
        counter_account: str,
        reference: str,
        sender_id: str | None,
        conversation_id: str | None,
        category: str | None,
        units: int,
        unit_price: Decimal | None,
        actor: str,
        entry_hash: str,
        timestamp: datetime | None,
    ) -> None:
        self._apply_debit(split, entry_hash)

    def _apply_debit(self, split: dict[str, Decimal], entry_hash: str) -> None:
        """``_debited``'s effect on the buckets (also called by ``_trigger_debited``)."""
        self.entry_hash = entry_hash
        self.included -= split["included"]
        self.prepaid -= split["prepaid"]
        self.postpaid_used += split["postpaid"] + split["overage"]
        self.overage_total += split["overage"]
        if len(split) > 4:  # grant parts besides included, prepaid, postpaid, overage
            grants.apply_grant_parts(self, split, -1)

    # -- transfer limits, written in wallet_transfers.py -----------------------------------

    change_transfer_limit = transfers.change_transfer_limit
    _transfer_limit_changed = transfers._transfer_limit_changed
    check_transfer_allowance = transfers.check_transfer_allowance
    _track_transfer = transfers._track_transfer

    # -- credit grants, written in wallet_grants.py -----------------------------------------

    issue_grant = grants.issue_grant
    _grant_issued = grants._grant_issued
    expire_due_grants = grants.expire_due_grants
    void_grant = grants.void_grant
    _grant_closed = grants._grant_closed
    retake_closed_remainders = grants.retake_closed_remainders

    # -- holds, written in wallet_holds.py --------------------------------------------------

    place_hold = holds.place_hold
    _hold_placed = holds._hold_placed
    settle_hold = holds.settle_hold
    release_hold = holds.release_hold
    expire_due_holds = holds.expire_due_holds
    _hold_closed = holds._hold_closed

    # -- policies: alerts, caps, auto top-up, cycles; written in wallet_policies.py -------

    configure_alerts = policies.configure_alerts
    _alert_settings_changed = policies._alert_settings_changed
    configure_auto_topup = policies.configure_auto_topup
    _auto_topup_changed = policies._auto_topup_changed
    change_spending_caps = policies.change_spending_caps
    _spending_caps_changed = policies._spending_caps_changed
    change_cycle_anchor = policies.change_cycle_anchor
    _cycle_anchor_changed = policies._cycle_anchor_changed
    start_due_cycles = policies.start_due_cycles
    _cycle_started = policies._cycle_started
    _track_spending = policies._track_spending
    _evaluate_triggers = policies._evaluate_triggers
    _alert_raised = policies._alert_raised
    _triggers_rearmed = policies._triggers_rearmed
    _auto_topup_triggered = policies._auto_topup_triggered

    @property
    def next_cycle_at(self) -> datetime:
        return self.cycle_anchor.next_boundary(self.cycle_start)
