"""The read-model rows: one class per table, the one place where a table's columns are named.

The SQL that reads and writes a table (select lists, upserts, COPY) and the values it writes are
derived from these classes' fields (``columns``, ``values_of``), so adding a column is one edit
here plus the column in the DDL of ``tables.py`` (which also migrates existing tables). Field
names are the column names; the order of the fields is the order of the derived column lists
(the tables' own column order is the DDL's).

Rows the builder updates in place (wallets, top-ups, usage days, account totals) are mutable
slots dataclasses. A ledger entry is written once per money event, on the hot path of a replay,
so it is a ``NamedTuple``: built as cheaply as a plain tuple and written by COPY as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, ClassVar, NamedTuple
from uuid import UUID

JSONB = {"jsonb": True}
"""Field metadata of a ``jsonb`` column, held in Python as its JSON text."""


@dataclass(slots=True)
class WalletRow:
    """``rm_wallet_balances``: a wallet's buckets, settings and policy state."""

    DERIVED: ClassVar[tuple[str, ...]] = ("balance", "available")
    """Columns computed from the fields (the properties below), written but never read back."""

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
    rate_card: str = field(metadata=JSONB)
    opened_at: datetime
    updated_at: datetime
    position: int
    policies: str = field(metadata=JSONB)
    """JSON: alerts, auto_topup, spending_caps and cycle settings (see ``default_policies``)."""
    cycle_start: datetime | None
    next_cycle_at: datetime | None
    alerts_active: list[str]
    blocked: str = field(metadata=JSONB)
    """JSON: category -> the day its spending cap was reached."""
    granted: Decimal = Decimal(0)
    """What is left of the active credit grants together."""
    grants: str = field(default="{}", metadata=JSONB)
    """JSON: the active grants by id (``projections.handlers.grants``)."""
    next_grant_expiry_at: datetime | None = None
    """The soonest ``expires_at`` of an active grant (the cycle scheduler looks for it)."""
    held: Decimal = Decimal(0)
    """What the active holds reserve together (``rm_holds`` lists them)."""
    tax_percent: Decimal | None = None
    """Tax on the wallet's top-up invoices; None: the service's rate."""

    @property
    def balance(self) -> Decimal:
        return self.included + self.granted + self.prepaid - self.postpaid_used

    @property
    def available(self) -> Decimal:
        return self.balance + self.postpaid_limit - self.held


@dataclass(slots=True)
class TopupRow:
    """``rm_topups``: a top-up request and where its lifecycle stands."""

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
    tax: Decimal = Decimal(0)
    """Invoice lines beyond the amount (``TopupRequest.Priced``); the total is their sum."""
    fee: Decimal = Decimal(0)
    pack: str | None = None
    bonus: Decimal = Decimal(0)
    """The pack the request buys, and the bonus it promises (credited when paid)."""
    credit_unit: str | None = None
    """A wallet kept in a unit of account: the unit, the rate of the request, the units."""
    credit_rate: Decimal | None = None
    credits: Decimal | None = None
    review_rules: list[str] = dataclasses.field(default_factory=list)
    """The risk rules that held it for review (kept after it is released)."""
    released_by: str | None = None
    released_at: datetime | None = None


class EntryRow(NamedTuple):
    """``rm_ledger_entries``: one money movement (a credit or a debit) of a wallet."""

    position: int
    wallet_id: UUID
    company_id: str
    direction: str
    kind: str
    amount: Decimal
    """Signed: a debit's amount is negative."""
    included: Decimal
    prepaid: Decimal
    postpaid: Decimal
    overage: Decimal
    balance_before: Decimal
    balance_after: Decimal
    counter_account: str
    reference: str
    sender_id: str | None
    conversation_id: str | None
    category: str | None
    units: int
    unit_price: Decimal | None
    actor: str
    occurred_at: datetime
    grants: Decimal = Decimal(0)
    """The entry's grant parts together (what it took from or gave to credit grants)."""


@dataclass(frozen=True, slots=True)
class AlertRow:
    """``rm_alerts``: an alert raised (or a balance alert recovered) on a wallet."""

    position: int
    wallet_id: UUID
    company_id: str
    alert: str
    detail: str = field(metadata=JSONB)
    occurred_at: datetime


class TransferRow(NamedTuple):
    """``rm_transfers``: a transfer from one company's wallet to another's (written once)."""

    position: int
    transfer_id: UUID
    from_company_id: str
    to_company_id: str
    currency: str
    amount: Decimal
    commission: Decimal
    net_amount: Decimal
    note: str
    actor: str
    occurred_at: datetime
    gift_type: str | None
    message: str


class HoldRow(NamedTuple):
    """``rm_holds``: an active hold (written when placed, deleted when closed)."""

    hold_id: UUID
    wallet_id: UUID
    company_id: str
    reference: str
    source: str | None
    sender_id: str
    category: str
    units: int
    amount: Decimal
    expires_at: datetime
    placed_at: datetime
    placed_by: str
    position: int


@dataclass(slots=True)
class PaymentOrderRow:
    """``rm_payment_orders``: a card payment order of a top-up and where it stands."""

    payment_order_id: UUID
    topup_id: UUID
    company_id: str
    provider: str
    status: str
    amount_total: Decimal
    currency: str
    created_at: datetime
    updated_at: datetime
    position: int
    checkout_url: str | None = None
    failure_reason: str | None = None


class PaymentOrderChange(NamedTuple):
    """A later event of an order created in an earlier batch: the columns it sets (None:
    unchanged). Written as an UPDATE, so the builder never loads order rows."""

    payment_order_id: UUID
    status: str | None
    checkout_url: str | None
    failure_reason: str | None
    updated_at: datetime
    position: int


@dataclass(slots=True)
class UsageRow:
    """``rm_usage_daily``: usage per company, sender, category and day.

    The counts of one batch are added to the stored ones (``ADDED``), so a batch only needs the
    usage it saw, never the stored row.
    """

    KEY: ClassVar[tuple[str, ...]] = ("company_id", "sender_id", "category", "day")
    ADDED: ClassVar[tuple[str, ...]] = (
        "billable_count", "failed_count", "units", "failed_units", "amount",
    )  # fmt: skip

    company_id: str
    sender_id: str
    category: str
    day: date
    billable_count: int = 0
    failed_count: int = 0
    units: int = 0
    failed_units: int = 0
    amount: Decimal = Decimal(0)


@dataclass(slots=True)
class AccountRow:
    """``rm_account_totals``: the running total of one account of the books."""

    KEY: ClassVar[tuple[str, ...]] = ("account",)
    ADDED: ClassVar[tuple[str, ...]] = ("total",)

    account: str
    total: Decimal
    position: int


Row = (
    WalletRow
    | TopupRow
    | EntryRow
    | AlertRow
    | UsageRow
    | AccountRow
    | HoldRow
    | PaymentOrderRow
    | TransferRow
)


def stored_fields(row_class: type[Row]) -> tuple[str, ...]:
    """The fields of ``row_class`` that are columns, in field order (what a SELECT reads)."""
    if dataclasses.is_dataclass(row_class):
        return tuple(f.name for f in dataclasses.fields(row_class))
    named_tuple_fields: tuple[str, ...] = getattr(row_class, "_fields", ())
    return named_tuple_fields


def columns(row_class: type[Row]) -> tuple[str, ...]:
    """Every column written for a row: its fields, then the derived columns."""
    return stored_fields(row_class) + getattr(row_class, "DERIVED", ())


def jsonb_columns(row_class: type[Row]) -> frozenset[str]:
    if not dataclasses.is_dataclass(row_class):
        return frozenset()
    return frozenset(f.name for f in dataclasses.fields(row_class) if f.metadata.get("jsonb"))


def values_of(row_class: type[Row]) -> Callable[[Any], tuple[Any, ...]]:
    """A function from a row to its values in ``columns`` order (one C call per row)."""
    return attrgetter(*columns(row_class))


def select_list(row_class: type[Row], *, derived: bool = False) -> str:
    """The row's stored fields (and, if asked, its derived columns) as a SELECT list; ``jsonb``
    columns are read as their JSON text, as the rows hold them."""
    jsonb = jsonb_columns(row_class)
    names = columns(row_class) if derived else stored_fields(row_class)
    return ", ".join(f"{c}::text" if c in jsonb else c for c in names)
