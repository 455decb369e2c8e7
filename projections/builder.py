"""Turns a batch of domain events into read-model row changes, in memory.

A batch is applied in two steps so the database sees set-based writes only: the writer loads the
current rows of every wallet and top-up the batch touches (one query each), ``BatchBuilder``
applies the events in order to those rows in memory, and the writer upserts the final rows and
appends the ledger entries in one transaction. Per-event work is a dictionary dispatch and a few
Decimal additions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger_service.domain.books import postings_of
from ledger_service.domain.money import format_amount
from ledger_service.domain.policies import (
    BALANCE_ALERTS,
    BALANCE_RECOVERED,
    LOW_BALANCE_PERCENT_DEFAULT,
    CycleAnchor,
)

ZERO = Decimal(0)

WALLET_TOPIC_PREFIX = "ledger_service.domain.wallet:Wallet."
TOPUP_TOPIC_PREFIX = "ledger_service.domain.topup:TopupRequest."
TRANSFER_TOPIC_PREFIX = "ledger_service.domain.transfer:Transfer."
PROJECTED_TOPIC_PREFIXES = (WALLET_TOPIC_PREFIX, TOPUP_TOPIC_PREFIX, TRANSFER_TOPIC_PREFIX)
"""Events of other aggregates (sender registrations, invoice claims) change no read model, so
their notifications are skipped before decoding."""


@dataclass(slots=True)
class WalletRow:
    wallet_id: UUID
    company_id: str
    pool_sender_id: str | None
    currency: str
    mode: str
    included: Decimal
    prepaid: Decimal
    postpaid_used: Decimal
    postpaid_limit: Decimal
    included_quota: Decimal
    overage_total: Decimal
    senders: list[str]
    rate_card: str
    opened_at: datetime
    updated_at: datetime
    position: int
    policies: str
    """JSON: alerts, auto_topup, spending_caps and cycle settings (see ``default_policies``)."""
    cycle_start: datetime | None
    next_cycle_at: datetime | None
    alerts_active: list[str]
    blocked: str
    """JSON: category -> the day its spending cap was reached."""

    @property
    def balance(self) -> Decimal:
        return self.included + self.prepaid - self.postpaid_used

    @property
    def available(self) -> Decimal:
        return self.balance + self.postpaid_limit


@dataclass(slots=True)
class TopupRow:
    topup_id: UUID
    company_id: str
    wallet_id: UUID
    amount: Decimal
    currency: str
    note: str
    status: str
    requested_by: str
    requested_at: datetime
    updated_at: datetime
    created_position: int
    position: int
    invoice_number: str | None = None
    payment_reference: str | None = None
    reason: str | None = None
    approved_by: str | None = None
    paid_by: str | None = None
    rejected_by: str | None = None
    cancelled_by: str | None = None
    approved_at: datetime | None = None
    invoiced_at: datetime | None = None
    paid_at: datetime | None = None
    completed_at: datetime | None = None
    rejected_at: datetime | None = None
    cancelled_at: datetime | None = None


AlertRow = tuple[int, UUID, str, str, str, datetime]
UsageKey = tuple[str, str, str, date]
EntryRow = tuple[Any, ...]


@dataclass
class BatchBuilder:
    """Applies one batch of events to the rows loaded for it; the writer persists the result."""

    wallets: dict[UUID, WalletRow]
    topups: dict[UUID, TopupRow]
    entries: list[EntryRow] = field(default_factory=list)
    alerts: list[AlertRow] = field(default_factory=list)
    usage: dict[UsageKey, list[Any]] = field(default_factory=dict)
    accounts: dict[str, list[Any]] = field(default_factory=dict)
    touched_wallets: set[UUID] = field(default_factory=set)
    touched_topups: set[UUID] = field(default_factory=set)

    def apply(self, position: int, event: Any) -> None:
        handler = _HANDLERS.get(type(event).__qualname__)
        if handler is not None:
            handler(self, position, event)
        for posting in postings_of(event):
            total = self.accounts.get(posting.account)
            if total is None:
                self.accounts[posting.account] = [posting.amount, position]
            else:
                total[0] += posting.amount
                total[1] = position

    # -- wallets --------------------------------------------------------------------------

    def _wallet(self, position: int, event: Any) -> WalletRow:
        row = self.wallets[event.originator_id]
        row.updated_at = event.timestamp
        row.position = position
        self.touched_wallets.add(row.wallet_id)
        return row

    def _opened(self, position: int, event: Any) -> None:
        self.wallets[event.originator_id] = WalletRow(
            wallet_id=event.originator_id,
            company_id=event.company_id,
            pool_sender_id=event.pool_sender_id,
            currency=event.currency,
            mode=event.mode,
            included=ZERO,
            prepaid=ZERO,
            postpaid_used=ZERO,
            postpaid_limit=event.postpaid_limit,
            included_quota=event.included_quota,
            overage_total=ZERO,
            senders=[],
            rate_card=_rate_card_json(event.rate_card),
            opened_at=event.timestamp,
            updated_at=event.timestamp,
            position=position,
            # As Wallet.__init__: the first cycle is the default anchor's, at the opening time.
            policies=json.dumps(default_policies(), sort_keys=True),
            cycle_start=CycleAnchor().cycle_start_at(event.timestamp),
            next_cycle_at=CycleAnchor().next_boundary(event.timestamp),
            alerts_active=[],
            blocked="{}",
        )
        self.touched_wallets.add(event.originator_id)

    def _sender_linked(self, position: int, event: Any) -> None:
        row = self._wallet(position, event)
        row.senders = sorted({*row.senders, event.waba_id})

    def _sender_unlinked(self, position: int, event: Any) -> None:
        row = self._wallet(position, event)
        row.senders = [s for s in row.senders if s != event.waba_id]

    def _postpaid_limit_changed(self, position: int, event: Any) -> None:
        self._wallet(position, event).postpaid_limit = event.postpaid_limit

    def _included_quota_changed(self, position: int, event: Any) -> None:
        self._wallet(position, event).included_quota = event.included_quota

    def _rate_card_changed(self, position: int, event: Any) -> None:
        self._wallet(position, event).rate_card = _rate_card_json(event.rate_card)

    def _credited(self, position: int, event: Any) -> None:
        row = self._wallet(position, event)
        before = row.balance
        split = event.split
        included = split.get("included", ZERO)
        prepaid = split.get("prepaid", ZERO)
        repaid = split.get("postpaid", ZERO)
        row.included += included
        row.prepaid += prepaid
        row.postpaid_used -= repaid
        self.entries.append(
            (position, row.wallet_id, row.company_id, "credit", event.kind, event.amount,
             included, prepaid, repaid, ZERO, before, row.balance, event.counter_account,
             event.reference, None, None, None, 0, None, event.actor, event.timestamp)
        )  # fmt: skip

    def _debited(self, position: int, event: Any) -> None:
        row = self._wallet(position, event)
        before = row.balance
        split = event.split
        row.included -= split["included"]
        row.prepaid -= split["prepaid"]
        row.postpaid_used += split["postpaid"] + split["overage"]
        row.overage_total += split["overage"]
        self.entries.append(
            (position, row.wallet_id, row.company_id, "debit", event.kind, -event.amount,
             split["included"], split["prepaid"], split["postpaid"], split["overage"], before,
             row.balance, event.counter_account, event.reference, event.sender_id,
             event.conversation_id, event.category, event.units, event.unit_price, event.actor,
             event.timestamp)
        )  # fmt: skip
        if event.sender_id is not None and event.category is not None:
            counts = self._usage(row.company_id, event.sender_id, event.category, event.timestamp)
            counts[0] += 1
            counts[2] += event.units
            counts[4] += event.amount

    def _failed_usage(self, position: int, event: Any) -> None:
        row = self._wallet(position, event)
        counts = self._usage(row.company_id, event.sender_id, event.category, event.timestamp)
        counts[1] += 1
        counts[3] += event.units

    def _usage(self, company: str, sender: str, category: str, at: datetime) -> list[Any]:
        key = (company, sender, category, at.date())
        counts = self.usage.get(key)
        if counts is None:
            # billable_count, failed_count, units, failed_units, amount
            counts = self.usage[key] = [0, 0, 0, 0, ZERO]
        return counts

    # -- policies and alerts --------------------------------------------------------------

    def _set_policy(self, position: int, event: Any, section: str, value: Any) -> WalletRow:
        row = self._wallet(position, event)
        policies = json.loads(row.policies)
        policies[section] = value
        row.policies = json.dumps(policies, sort_keys=True)
        return row

    def _alert_settings_changed(self, position: int, event: Any) -> None:
        self._set_policy(
            position,
            event,
            "alerts",
            {
                "low_balance_threshold": _amount(event.low_balance_threshold),
                "low_balance_percent": format_amount(event.low_balance_percent),
                "burn_limit_24h": _amount(event.burn_limit_24h),
            },
        )

    def _auto_topup_changed(self, position: int, event: Any) -> None:
        self._set_policy(
            position,
            event,
            "auto_topup",
            {
                "enabled": event.enabled,
                "trigger_balance": format_amount(event.trigger_balance),
                "amount": format_amount(event.amount),
                "auto_approve": event.auto_approve,
            },
        )

    def _spending_caps_changed(self, position: int, event: Any) -> None:
        caps = {
            category: {"units": cap["units"], "amount": _amount(cap["amount"])}
            for category, cap in event.caps.items()
        }
        self._set_policy(position, event, "spending_caps", caps)

    def _cycle_anchor_changed(self, position: int, event: Any) -> None:
        anchor = event.anchor
        row = self._set_policy(
            position,
            event,
            "cycle",
            {
                "anchor_day": anchor["day"],
                "anchor_time": anchor["at"],
                "time_zone": anchor["time_zone"],
            },
        )
        row.next_cycle_at = event.next_cycle_at

    def _cycle_started(self, position: int, event: Any) -> None:
        row = self._wallet(position, event)
        row.cycle_start, row.next_cycle_at = event.cycle_start, event.next_cycle_at

    def _alert_raised(self, position: int, event: Any) -> None:
        row = self._wallet(position, event)
        detail: dict[str, Any] = {
            "balance": format_amount(event.balance),
            "available": format_amount(event.available),
            "threshold": _amount(event.threshold),
            "measured": _amount(event.measured),
        }
        if event.category is not None:
            blocked = json.loads(row.blocked)
            blocked[event.category] = event.day
            row.blocked = json.dumps(blocked, sort_keys=True)
            detail.update(category=event.category, day=event.day)
        else:
            row.alerts_active = sorted({*row.alerts_active, event.alert})
        self._alert(position, row, event.alert, detail, event.timestamp)

    def _triggers_rearmed(self, position: int, event: Any) -> None:
        row = self._wallet(position, event)
        row.alerts_active = [a for a in row.alerts_active if a not in event.triggers]
        recovered = sorted(t for t in event.triggers if t in BALANCE_ALERTS)
        if recovered:
            detail = {
                "balance": format_amount(event.balance),
                "available": format_amount(event.available),
                "recovered": recovered,
            }
            self._alert(position, row, BALANCE_RECOVERED, detail, event.timestamp)

    def _touch(self, position: int, event: Any) -> None:
        self._wallet(position, event)

    def _alert(
        self, position: int, row: WalletRow, alert: str, detail: dict[str, Any], at: datetime
    ) -> None:
        self.alerts.append(
            (position, row.wallet_id, row.company_id, alert, json.dumps(detail, sort_keys=True), at)
        )

    # -- top-ups --------------------------------------------------------------------------

    def _topup(self, position: int, event: Any) -> TopupRow:
        row = self.topups[event.originator_id]
        row.updated_at = event.timestamp
        row.position = position
        self.touched_topups.add(row.topup_id)
        return row

    def _requested(self, position: int, event: Any) -> None:
        self.topups[event.originator_id] = TopupRow(
            topup_id=event.originator_id,
            company_id=event.company_id,
            wallet_id=event.wallet_id,
            amount=event.amount,
            currency=event.currency,
            note=event.note,
            status="pending",
            requested_by=event.actor,
            requested_at=event.timestamp,
            updated_at=event.timestamp,
            created_position=position,
            position=position,
        )
        self.touched_topups.add(event.originator_id)

    def _approved(self, position: int, event: Any) -> None:
        row = self._topup(position, event)
        row.approved_by, row.approved_at = event.actor, event.timestamp

    def _invoiced(self, position: int, event: Any) -> None:
        row = self._topup(position, event)
        row.status, row.invoice_number = "invoiced", event.invoice_number
        row.invoiced_at = event.timestamp

    def _rejected(self, position: int, event: Any) -> None:
        row = self._topup(position, event)
        row.status, row.reason = "rejected", event.reason
        row.rejected_by, row.rejected_at = event.actor, event.timestamp

    def _cancelled(self, position: int, event: Any) -> None:
        row = self._topup(position, event)
        row.status, row.reason = "cancelled", event.reason
        row.cancelled_by, row.cancelled_at = event.actor, event.timestamp

    def _paid(self, position: int, event: Any) -> None:
        row = self._topup(position, event)
        row.payment_reference = event.payment_reference
        row.paid_by, row.paid_at = event.actor, event.timestamp

    def _completed(self, position: int, event: Any) -> None:
        row = self._topup(position, event)
        row.status, row.completed_at = "completed", event.timestamp


def default_policies() -> dict[str, Any]:
    """A wallet's policies before any were configured (as ``Wallet.__init__`` sets them)."""
    anchor = CycleAnchor()
    return {
        "alerts": {
            "low_balance_threshold": None,
            "low_balance_percent": format_amount(LOW_BALANCE_PERCENT_DEFAULT),
            "burn_limit_24h": None,
        },
        "auto_topup": {
            "enabled": False,
            "trigger_balance": "0",
            "amount": "0",
            "auto_approve": False,
        },
        "spending_caps": {},
        "cycle": {
            "anchor_day": anchor.day,
            "anchor_time": anchor.at,
            "time_zone": anchor.time_zone,
        },
    }


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else format_amount(value)


def _rate_card_json(rate_card: dict[str, Decimal]) -> str:
    return json.dumps({k: str(v) for k, v in sorted(rate_card.items())})


def needs_loading(event: Any) -> tuple[str, UUID] | None:
    """Which existing row an event updates ("wallet"/"topup", id); None for creations."""
    kind = _LOADS.get(type(event).__qualname__)
    return None if kind is None else (kind, event.originator_id)


_Handler = Callable[[BatchBuilder, int, Any], None]
# Keyed by the event class's qualified name: the classes are made by eventsourcing's ``@event``
# decorator at import time, so static typing cannot name most of them.
_HANDLERS: dict[str, _Handler] = {
    "Wallet.Opened": BatchBuilder._opened,
    "Wallet.SenderLinked": BatchBuilder._sender_linked,
    "Wallet.SenderUnlinked": BatchBuilder._sender_unlinked,
    "Wallet.PostpaidLimitChanged": BatchBuilder._postpaid_limit_changed,
    "Wallet.IncludedQuotaChanged": BatchBuilder._included_quota_changed,
    "Wallet.RateCardChanged": BatchBuilder._rate_card_changed,
    "Wallet.Credited": BatchBuilder._credited,
    "Wallet.Debited": BatchBuilder._debited,
    "Wallet.FailedUsageRecorded": BatchBuilder._failed_usage,
    "Wallet.AlertSettingsChanged": BatchBuilder._alert_settings_changed,
    "Wallet.AutoTopupChanged": BatchBuilder._auto_topup_changed,
    "Wallet.SpendingCapsChanged": BatchBuilder._spending_caps_changed,
    "Wallet.CycleAnchorChanged": BatchBuilder._cycle_anchor_changed,
    "Wallet.CycleStarted": BatchBuilder._cycle_started,
    "Wallet.AlertRaised": BatchBuilder._alert_raised,
    "Wallet.TriggersRearmed": BatchBuilder._triggers_rearmed,
    "Wallet.AutoTopupTriggered": BatchBuilder._touch,
    "TopupRequest.Requested": BatchBuilder._requested,
    "TopupRequest.Approved": BatchBuilder._approved,
    "TopupRequest.Invoiced": BatchBuilder._invoiced,
    "TopupRequest.Rejected": BatchBuilder._rejected,
    "TopupRequest.Cancelled": BatchBuilder._cancelled,
    "TopupRequest.Paid": BatchBuilder._paid,
    "TopupRequest.Completed": BatchBuilder._completed,
}
"""Transfer.Completed has no handler: it only books the commission (account totals)."""
_CREATIONS = frozenset({"Wallet.Opened", "TopupRequest.Requested"})
_LOADS: dict[str, str] = {
    name: "wallet" if name.startswith("Wallet.") else "topup"
    for name in _HANDLERS
    if name not in _CREATIONS
}
HANDLED_EVENTS = frozenset(_HANDLERS)
