"""Page models: what each console page shows, computed from read-model rows.

Pure functions, so what a page says for a given balance or queue is unit-tested without a
browser. Money stays a decimal string exactly as stored (``format_amount``), with its currency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ledger_service.domain.money import format_amount
from ledger_service.domain.policies import BELOW_ZERO, LOW_BALANCE

Row = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Banner:
    kind: str
    """``below-zero`` or ``low-balance``: the CSS class and the test's handle."""
    message: str


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    amount: str
    explanation: str


@dataclass(frozen=True, slots=True)
class WalletView:
    company_id: str
    currency: str
    balance: str
    available: str
    held: str
    postpaid_limit: str
    senders: list[str]
    buckets: list[Bucket]
    banner: Banner | None
    updated_at: datetime
    position: int


def money(amount: Decimal | None) -> str:
    return "" if amount is None else format_amount(amount)


def banner_of(row: Row) -> Banner | None:
    """Below zero outranks low balance; both vanish once the balance recovers (the alert
    engine clears ``low_balance_warning`` then, and a balance at or above zero is not below)."""
    currency = row["currency"]
    if row["balance"] < 0 or BELOW_ZERO in row["alerts_active"]:
        return Banner(
            "below-zero",
            f"The balance is below zero ({money(row['balance'])} {currency}): messages are "
            f"now drawn from postpaid credit. Top up to bring it back above zero.",
        )
    if LOW_BALANCE in row["alerts_active"]:
        return Banner(
            "low-balance",
            f"The balance is low ({money(row['balance'])} {currency}). Request a top-up "
            f"before it runs out.",
        )
    return None


def wallet_view(row: Row) -> WalletView:
    currency = row["currency"]
    buckets = [
        Bucket("Included", money(row["included"]), "this month's included quota, used first"),
        Bucket("Grants", money(row["granted"]), "promotional credit, used next"),
        Bucket("Prepaid", money(row["prepaid"]), "your paid top-ups, used after that"),
        Bucket(
            "Postpaid used",
            money(row["postpaid_used"]),
            f"credit drawn of the {money(row['postpaid_limit'])} {currency} limit, used last",
        ),
    ]
    return WalletView(
        company_id=row["company_id"],
        currency=currency,
        balance=money(row["balance"]),
        available=money(row["available"]),
        held=money(row["held"]),
        postpaid_limit=money(row["postpaid_limit"]),
        senders=sorted(row["senders"]),
        buckets=buckets,
        banner=banner_of(row),
        updated_at=row["updated_at"],
        position=row["position"],
    )


@dataclass(frozen=True, slots=True)
class TopupView:
    topup_id: str
    company_id: str
    status: str
    amount: str
    total: str
    currency: str
    note: str
    invoice_number: str | None
    payment_reference: str | None
    reason: str | None
    requested_by: str
    requested_at: datetime
    actions: tuple[str, ...]
    review_rules: tuple[str, ...] = ()
    credits: str | None = None
    """A wallet kept in a unit of account: what the money buys, e.g. ``1000 CREDIT``."""


def topup_actions(status: str, *, operator: bool) -> tuple[str, ...]:
    """What the viewer may do next (the aggregate still has the last word)."""
    if operator:
        return {
            "needs_review": ("release", "reject", "cancel"),
            "pending": ("approve", "reject", "cancel"),
            "invoiced": ("mark-paid", "cancel"),
        }.get(status, ())
    return ("cancel",) if status in ("pending", "needs_review") else ()


def topup_view(row: Row, *, operator: bool) -> TopupView:
    total = row["amount"] + row["tax"] + row["fee"]
    return TopupView(
        topup_id=str(row["topup_id"]),
        company_id=row["company_id"],
        status=row["status"],
        amount=money(row["amount"]),
        total=money(total),
        currency=row["currency"],
        note=row["note"] or "",
        invoice_number=row["invoice_number"],
        payment_reference=row["payment_reference"],
        reason=row["reason"],
        requested_by=row["requested_by"],
        requested_at=row["requested_at"],
        actions=topup_actions(row["status"], operator=operator),
        review_rules=tuple(row["review_rules"] or ()),
        credits=None
        if row.get("credits") is None
        else f"{money(row['credits'])} {row['credit_unit']}",
    )


@dataclass(frozen=True, slots=True)
class DayBar:
    day: str
    amount: str
    units: int
    height_percent: int


@dataclass(frozen=True, slots=True)
class UsageChart:
    bars: list[DayBar]
    total: str
    units: int


def usage_chart(rows: Sequence[Row], *, last_day: date, days: int = 30) -> UsageChart:
    """One bar per day of the ``days`` ending ``last_day`` (days without usage are empty bars),
    scaled to the busiest day."""
    by_day = {str(r["key"]): r for r in rows}
    top = max((r["amount"] for r in rows), default=Decimal(0))
    bars = []
    for offset in range(days - 1, -1, -1):
        day = (last_day - timedelta(days=offset)).isoformat()
        row = by_day.get(day)
        amount = Decimal(0) if row is None else row["amount"]
        height = 0 if top <= 0 else max(int(amount * 100 / top), 1 if amount > 0 else 0)
        bars.append(DayBar(day, money(amount), 0 if row is None else row["units"], height))
    total = sum((r["amount"] for r in rows), Decimal(0))
    return UsageChart(bars, money(total), sum(int(r["units"]) for r in rows))


@dataclass(frozen=True, slots=True)
class EntryView:
    position: int
    occurred_at: datetime
    direction: str
    kind: str
    amount: str
    balance_after: str
    sender_id: str | None
    category: str | None
    units: int
    unit_price: str
    reference: str
    counter_account: str
    actor: str

    def csv_values(self, currency: str) -> list[object]:
        """One CSV row, in the order of ``history_pages.CSV_COLUMNS``."""
        return [
            self.position, self.occurred_at.isoformat(), self.direction, self.kind, self.amount,
            currency, self.balance_after, self.sender_id or "", self.category or "", self.units,
            self.unit_price, self.reference, self.counter_account, self.actor,
        ]  # fmt: skip


def entry_view(row: Row) -> EntryView:
    """A ledger entry as stored: debits are negative, so a column of amounts sums to the
    change of the balance."""
    return EntryView(
        position=row["position"],
        occurred_at=row["occurred_at"],
        direction=row["direction"],
        kind=row["kind"],
        amount=money(row["amount"]),
        balance_after=money(row["balance_after"]),
        sender_id=row["sender_id"],
        category=row["category"],
        units=row["units"],
        unit_price=money(row["unit_price"]),
        reference=row["reference"],
        counter_account=row["counter_account"],
        actor=row["actor"],
    )


@dataclass(frozen=True, slots=True)
class WalletRowView:
    company_id: str
    pool: str
    currency: str
    balance: str
    available: str
    held: str
    sender_count: int
    alerts: list[str]
    updated_at: datetime
    below_zero: bool


def wallet_row_view(row: Row) -> WalletRowView:
    """One pool in the operators' list: a company's shared pool, or a legacy sender's pool."""
    return WalletRowView(
        company_id=row["company_id"],
        pool="shared" if row["pool_sender_id"] is None else f"sender {row['pool_sender_id']}",
        currency=row["currency"],
        balance=money(row["balance"]),
        available=money(row["available"]),
        held=money(row["held"]),
        sender_count=row["sender_count"],
        alerts=sorted(a.replace("_", " ") for a in row["alerts_active"]),
        updated_at=row["updated_at"],
        below_zero=row["balance"] < 0,
    )
