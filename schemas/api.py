"""Request and response models of the HTTP API (``/v1``), the API's external contract.

Money travels as decimal strings in both directions. A JSON number where money is expected is
refused with ``INVALID_AMOUNT``: by the time a float reaches us it may already have lost cents.
Unknown fields are refused, so a typo never silently drops part of a request.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from ledger_service.domain.errors import InvalidAmount
from ledger_service.domain.money import AMOUNT_PATTERN, format_amount, parse_amount
from ledger_service.domain.policies import (
    ANCHOR_DAY_MAX,
    AUTO_TOPUP_SECTION_ENABLED_DEFAULT,
    LOW_BALANCE_PERCENT_DEFAULT,
    CycleAnchor,
    alert_settings_from,
    auto_topup_from,
    check_spending_caps,
    cycle_anchor_from,
)
from ledger_service.domain.wallet import PoolMode
from ledger_service.service.topups import MarkTopupPaid, RejectTopup, RequestTopup
from ledger_service.service.transfers import TransferMoney
from ledger_service.service.wallets import ConfigureWallet, LinkSender, OpenWallet

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
INVALID_AMOUNT = "invalid_amount"
"""Pydantic error type of a money field; the API maps it to the code ``INVALID_AMOUNT``."""


def _money_text(value: object) -> str:
    if not isinstance(value, str):
        kind = "number" if isinstance(value, int | float) else type(value).__name__
        raise PydanticCustomError(
            INVALID_AMOUNT,
            'money must be a decimal string such as "12.50", not a JSON {kind}: '
            "numbers cannot carry money exactly",
            {"kind": kind},
        )
    try:
        return format_amount(parse_amount(value))
    except InvalidAmount as exc:
        raise PydanticCustomError(INVALID_AMOUNT, exc.message) from None


Money = Annotated[
    str,
    BeforeValidator(_money_text),
    Field(
        json_schema_extra={"pattern": AMOUNT_PATTERN, "examples": ["12.50"]},
        description="decimal string, at most 7 fractional digits",
    ),
]
Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Text = Annotated[str, StringConstraints(max_length=500)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _prices(prices: dict[str, str]) -> dict[str, Decimal]:
    return {category: Decimal(price) for category, price in prices.items()}


def _optional_decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


# -- errors ---------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(examples=["INVALID_TRANSITION"])
    message: str
    request_id: str


class ErrorBody(BaseModel):
    error: ErrorDetail


# -- wallets --------------------------------------------------------------------------------


class Buckets(BaseModel):
    included: str
    prepaid: str
    postpaid_used: str


class WalletOut(BaseModel):
    company_id: str
    wallet_id: UUID
    pool_sender_id: str | None
    currency: str
    mode: str
    balance: str
    available: str
    postpaid_limit: str
    included_quota: str
    overage_total: str
    buckets: Buckets
    senders: list[str]
    policies: dict[str, Any] = Field(
        description="alerts, auto_topup, spending_caps and cycle settings (PATCH to change)"
    )
    cycle: CycleOut
    alerts_active: list[str] = Field(description="alerts that fired and have not recovered")
    blocked_categories: list[str] = Field(
        description="categories whose daily spending cap was reached today (wallet time zone)"
    )
    updated_at: datetime
    position: int = Field(description="event-store position of the last event applied")


class CycleOut(BaseModel):
    start: datetime | None
    next_start: datetime | None


class AlertSettingsIn(Request):
    low_balance_threshold: Money | None = Field(
        None, description="absolute; when null the percentage of the cycle's funding applies"
    )
    low_balance_percent: Money = format_amount(LOW_BALANCE_PERCENT_DEFAULT)
    burn_limit_24h: Money | None = Field(None, description="rapid-burn alert above this")


class AutoTopupIn(Request):
    enabled: bool = AUTO_TOPUP_SECTION_ENABLED_DEFAULT
    trigger_balance: Money = Field("0", description="request a top-up when balance goes below")
    amount: Money = "0"
    auto_approve: bool = False


class SpendingCapIn(Request):
    units: int | None = Field(None, ge=1, le=1_000_000_000)
    amount: Money | None = None


class CycleIn(Request):
    anchor_day: int = Field(CycleAnchor().day, ge=1, le=ANCHOR_DAY_MAX)
    anchor_time: Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = (
        CycleAnchor().at
    )
    time_zone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = (
        CycleAnchor().time_zone
    )


class AuthorizationOut(BaseModel):
    allowed: bool
    reason: str | None = Field(
        description="null when allowed; else SENDER_NOT_LINKED, UNKNOWN_CATEGORY, "
        "SPENDING_CAP_REACHED or INSUFFICIENT_AVAILABLE_BALANCE"
    )
    message: str
    company_id: str
    waba_id: str
    category: str
    units: int
    price: str | None
    available: str | None
    position: int | None = Field(description="read-model position the answer is based on")


class AlertOut(BaseModel):
    position: int
    alert: str
    detail: dict[str, Any]
    occurred_at: datetime


class AlertsPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None


class OpenWalletIn(Request):
    company_id: Key
    currency: Currency
    mode: Literal["shared", "per_sender"] = "shared"
    pool_sender_id: Key | None = None
    postpaid_limit: Money = "0"
    included_quota: Money = "0"
    rate_card: dict[Key, Money] = Field(default_factory=dict)

    def to_command(self, *, actor: str, idempotency_key: str) -> OpenWallet:
        return OpenWallet(
            company_id=self.company_id,
            currency=self.currency,
            mode=PoolMode(self.mode),
            pool_sender_id=self.pool_sender_id,
            postpaid_limit=Decimal(self.postpaid_limit),
            included_quota=Decimal(self.included_quota),
            rate_card=_prices(self.rate_card),
            actor=actor,
            idempotency_key=idempotency_key,
        )


class WalletWriteOut(BaseModel):
    company_id: str
    wallet_id: UUID | None = None
    position: int | None = Field(description="read-your-writes: pass as min_position")


class ConfigureWalletIn(Request):
    postpaid_limit: Money | None = None
    included_quota: Money | None = None
    rate_card: dict[Key, Money] | None = None
    alerts: AlertSettingsIn | None = None
    auto_topup: AutoTopupIn | None = None
    spending_caps: dict[Key, SpendingCapIn] | None = Field(
        None, description="daily caps per category; {} removes all"
    )
    cycle: CycleIn | None = None

    def to_command(self, company_id: str, *, actor: str, idempotency_key: str) -> ConfigureWallet:
        """Sections travel as plain mappings (their defaults filled in here) into the
        domain's policy methods."""
        return ConfigureWallet(
            company_id=company_id,
            postpaid_limit=_optional_decimal(self.postpaid_limit),
            included_quota=_optional_decimal(self.included_quota),
            rate_card=None if self.rate_card is None else _prices(self.rate_card),
            alerts=None if self.alerts is None else alert_settings_from(self.alerts.model_dump()),
            auto_topup=None
            if self.auto_topup is None
            else auto_topup_from(self.auto_topup.model_dump()),
            spending_caps=None
            if self.spending_caps is None
            else check_spending_caps(
                {c: cap.model_dump() for c, cap in self.spending_caps.items()}
            ),
            cycle=None if self.cycle is None else cycle_anchor_from(self.cycle.model_dump()),
            actor=actor,
            idempotency_key=idempotency_key,
        )


class SenderIn(Request):
    waba_id: Key

    def to_command(self, company_id: str, *, actor: str, idempotency_key: str) -> LinkSender:
        return LinkSender(
            company_id=company_id,
            waba_id=self.waba_id,
            actor=actor,
            idempotency_key=idempotency_key,
        )


class SenderWriteOut(BaseModel):
    company_id: str
    waba_id: str
    position: int | None


# -- ledger entries and usage ---------------------------------------------------------------


class EntryOut(BaseModel):
    position: int
    wallet_id: UUID
    direction: Literal["credit", "debit"]
    kind: str
    amount: str = Field(description="signed: negative for debits")
    split: dict[str, str] = Field(description="how the amount moved each bucket")
    balance_before: str
    balance_after: str
    counter_account: str
    reference: str
    sender_id: str | None
    conversation_id: str | None
    category: str | None
    units: int
    unit_price: str | None
    actor: str
    occurred_at: datetime


class EntriesPage(BaseModel):
    items: list[EntryOut]
    next_cursor: str | None = Field(description="pass as cursor for the next (older) page")


class UsageRow(BaseModel):
    key: str = Field(description="the sender, category or day (YYYY-MM-DD) of this row")
    billable_count: int
    failed_count: int
    units: int
    failed_units: int
    amount: str


class UsageOut(BaseModel):
    company_id: str
    group_by: Literal["sender", "category", "day"]
    items: list[UsageRow]


# -- top-ups --------------------------------------------------------------------------------


class TopupRequestIn(Request):
    company_id: Key
    amount: Money
    currency: Currency
    note: Text = ""

    def to_command(self, *, actor: str, idempotency_key: str) -> RequestTopup:
        return RequestTopup(
            company_id=self.company_id,
            amount=Decimal(self.amount),
            currency=self.currency,
            note=self.note,
            actor=actor,
            idempotency_key=idempotency_key,
        )


class RejectIn(Request):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)]

    def to_command(self, topup_id: UUID, *, actor: str, idempotency_key: str) -> RejectTopup:
        return RejectTopup(
            topup_id=topup_id, reason=self.reason, actor=actor, idempotency_key=idempotency_key
        )


class MarkPaidIn(Request):
    payment_reference: Annotated[str, StringConstraints(min_length=1, max_length=200)]

    def to_command(self, topup_id: UUID, *, actor: str, idempotency_key: str) -> MarkTopupPaid:
        return MarkTopupPaid(
            topup_id=topup_id,
            payment_reference=self.payment_reference,
            actor=actor,
            idempotency_key=idempotency_key,
        )


class TopupOut(BaseModel):
    id: UUID
    company_id: str
    status: Literal["pending", "invoiced", "completed", "rejected", "cancelled"]
    amount: str | None = None
    currency: str | None = None
    note: str | None = None
    invoice_number: str | None = None
    payment_reference: str | None = None
    reason: str | None = None
    requested_by: str | None = None
    approved_by: str | None = None
    paid_by: str | None = None
    rejected_by: str | None = None
    requested_at: datetime | None = None
    approved_at: datetime | None = None
    completed_at: datetime | None = None
    rejected_at: datetime | None = None
    cancelled_at: datetime | None = None
    updated_at: datetime | None = None
    position: int | None = Field(
        default=None, description="writes: the event-store position (read-your-writes)"
    )


class TopupsPage(BaseModel):
    items: list[TopupOut]
    next_cursor: str | None


# -- transfers and admin --------------------------------------------------------------------


class TransferIn(Request):
    from_company_id: Key
    to_company_id: Key
    amount: Money
    commission_rate: Money = "0"
    note: Text = ""

    def to_command(self, *, actor: str, idempotency_key: str) -> TransferMoney:
        return TransferMoney(
            from_company_id=self.from_company_id,
            to_company_id=self.to_company_id,
            amount=Decimal(self.amount),
            commission_rate=Decimal(self.commission_rate),
            note=self.note,
            actor=actor,
            idempotency_key=idempotency_key,
        )


class TransferOut(BaseModel):
    transfer_id: UUID
    from_company_id: str
    to_company_id: str
    amount: str
    commission: str
    net_amount: str
    position: int | None


class CirculationOut(BaseModel):
    wallets: int
    included: str
    prepaid: str
    postpaid_used: str
    balance: str


class TopupStatusOut(BaseModel):
    count: int
    amount: str


class UsageTotalsOut(BaseModel):
    billable_count: int
    failed_count: int
    units: int
    amount: str


class AdminStatsOut(BaseModel):
    position: int = Field(description="projection position the figures are consistent with")
    money_in_circulation: dict[str, CirculationOut] = Field(description="per currency")
    topups_by_status: dict[str, TopupStatusOut]
    usage: UsageTotalsOut
