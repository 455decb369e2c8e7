"""The wallet's events other than the two money events (``entries``): their stored contract.

Declared, rather than left to the library to build from the ``@event`` methods, so that readers
(projections, audit, reactions) name them as classes and a type checker sees their fields.
``Wallet`` adopts each in its class body, as it does ``Credited`` and ``Debited``, so the library
defines them as ``Wallet.Opened`` etc. and the stored topics stay
``ledger_service.domain.wallet:Wallet.<Event>``. Fields are in the order of the event method's
parameters (``timestamp`` is the base class's): that order is the stored payload's, so never
reorder, rename or remove one; version with ``class_version``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from ledger_service.domain.policies import RENOTIFY_PER_CROSSING


class Opened(Aggregate.Created):
    company_id: str
    currency: str
    mode: str
    pool_sender_id: str | None
    postpaid_limit: Decimal
    included_quota: Decimal
    rate_card: dict[str, Decimal]
    actor: str


# -- senders and settings (wallet_setup) ----------------------------------------------------


class SenderLinked(Aggregate.Event):
    waba_id: str
    actor: str


class SenderUnlinked(Aggregate.Event):
    waba_id: str
    actor: str


class PoolMerged(Aggregate.Event):
    """A legacy per-sender pool, emptied into its company's shared pool: closed for good."""

    into_wallet_id: UUID
    actor: str


class PostpaidLimitChanged(Aggregate.Event):
    postpaid_limit: Decimal
    previous: Decimal
    actor: str


class TaxRateChanged(Aggregate.Event):
    """The tax added to this wallet's top-up invoices, in percent (None: the service's)."""

    tax_percent: Decimal | None
    actor: str


class TransferLimitChanged(Aggregate.Event):
    """The most this wallet may send by tenant transfers per day (None: no limit)."""

    daily_limit: Decimal | None
    actor: str


class RateCardChanged(Aggregate.Event):
    rate_card: dict[str, Decimal]
    actor: str


class IncludedQuotaChanged(Aggregate.Event):
    included_quota: Decimal
    actor: str


class FailedUsageRecorded(Aggregate.Event):
    reference: str
    sender_id: str
    conversation_id: str
    category: str
    units: int
    actor: str


# -- credit grants (wallet_grants) -----------------------------------------------------------


class GrantIssued(Aggregate.Event):
    """A grant registered; its money follows as a ``Credited`` (bucket ``grants``)."""

    grant_id: str
    amount: Decimal
    priority: int
    expires_at: datetime | None
    reason: str
    reference: str
    actor: str


class GrantClosed(Aggregate.Event):
    """A grant expired or was voided (``status``) as of ``as_of`` (the scheduler's run time for
    an expiry, which may catch up or, with ``ledger cycles run --at``, be set); any remainder
    was debited just before."""

    grant_id: str
    status: str
    remainder: Decimal
    as_of: datetime
    actor: str


# -- holds (wallet_holds) ---------------------------------------------------------------------


class HoldPlaced(Aggregate.Event):
    """The price of a message reserved until ``expires_at`` (no money moves)."""

    hold_id: str
    reference: str
    source: str | None
    sender_id: str
    category: str
    units: int
    amount: Decimal
    expires_at: datetime
    actor: str


class HoldClosed(Aggregate.Event):
    """A hold settled by its usage event, released or expired (``status``), as of ``as_of``."""

    hold_id: str
    reference: str
    status: str
    amount: Decimal
    as_of: datetime
    actor: str


# -- policies, cycles and triggers (wallet_policies) ----------------------------------------


class AlertSettingsChanged(Aggregate.Event):
    """Version 2 added ``renotify``; a version 1 event meant today's default, per crossing."""

    class_version = 2

    low_balance_threshold: Decimal | None
    low_balance_percent: Decimal
    burn_limit_24h: Decimal | None
    renotify: str
    actor: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["renotify"] = RENOTIFY_PER_CROSSING


class AutoTopupChanged(Aggregate.Event):
    enabled: bool
    trigger_balance: Decimal
    amount: Decimal
    auto_approve: bool
    actor: str


class SpendingCapsChanged(Aggregate.Event):
    caps: dict[str, dict[str, Any]]
    actor: str


class CycleAnchorChanged(Aggregate.Event):
    anchor: dict[str, Any]
    next_cycle_at: datetime
    actor: str


class CycleStarted(Aggregate.Event):
    cycle_start: datetime
    next_cycle_at: datetime
    opening_funded: Decimal
    actor: str


class AlertRaised(Aggregate.Event):
    company_id: str
    alert: str
    balance: Decimal
    available: Decimal
    threshold: Decimal | None
    category: str | None
    day: str | None
    measured: Decimal | None


class TriggersRearmed(Aggregate.Event):
    company_id: str
    triggers: list[str]
    balance: Decimal
    available: Decimal


class AutoTopupTriggered(Aggregate.Event):
    company_id: str
    amount: Decimal
    trigger_balance: Decimal
    auto_approve: bool
    balance: Decimal
