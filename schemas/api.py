"""Response models and shared field types of the HTTP API (``/v1``), the API's external
contract; the request models are in ``schemas.requests``.

Money travels as decimal strings in both directions. A JSON number where money is expected is
refused with ``INVALID_AMOUNT``: by the time a float reaches us it may already have lost cents.
Unknown fields are refused, so a typo never silently drops part of a request.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from ledger_service.domain.errors import InvalidAmount
from ledger_service.domain.money import (
    AMOUNT_PATTERN,
    FRACTION_PATTERN,
    PAYABLE_CURRENCIES,
    PERCENT_PATTERN,
    POSITIVE_AMOUNT_PATTERN,
    UNSIGNED_AMOUNT_PATTERN,
    format_amount,
    parse_amount,
)

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
INVALID_AMOUNT = "invalid_amount"
"""Pydantic error type of a money field; the API maps it to the code ``INVALID_AMOUNT``."""


def _money_text(value: object, *, allow_negative: bool = False) -> str:
    if not isinstance(value, str):
        kind = "number" if isinstance(value, int | float) else type(value).__name__
        raise PydanticCustomError(
            INVALID_AMOUNT,
            'money must be a decimal string such as "12.50", not a JSON {kind}: '
            "numbers cannot carry money exactly",
            {"kind": kind},
        )
    try:
        return format_amount(parse_amount(value, allow_negative=allow_negative))
    except InvalidAmount as exc:
        raise PydanticCustomError(INVALID_AMOUNT, exc.message) from None


def _parsed(*, signed: bool = False) -> BeforeValidator:
    return BeforeValidator(lambda value: _money_text(value, allow_negative=signed))


def _stated(pattern: str, example: str, description: str) -> Any:
    """The pattern stated in the schema, so that what the schema allows is what the API
    accepts (the range checks the pattern encodes are the domain's, which repeats them)."""
    return Field(
        json_schema_extra={"pattern": pattern, "examples": [example]}, description=description
    )


def _within(pattern: str, what: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise PydanticCustomError(
                INVALID_AMOUNT, "{value} is not {what}", {"value": value, "what": what}
            )
        return value

    return AfterValidator(check)


Money = Annotated[
    str,
    _parsed(),
    _stated(UNSIGNED_AMOUNT_PATTERN, "12.50", "decimal string, at most 7 fractional digits, "
            "0 to 10^12"),
]  # fmt: skip
PositiveMoney = Annotated[
    str,
    _parsed(),
    _within(POSITIVE_AMOUNT_PATTERN, "above zero"),
    _stated(POSITIVE_AMOUNT_PATTERN, "12.50", "decimal string, at most 7 fractional digits, "
            "above 0 and at most 10^12"),
]  # fmt: skip
SignedMoney = Annotated[
    str,
    _parsed(signed=True),
    _stated(AMOUNT_PATTERN, "-25", "decimal string, at most 7 fractional digits, -10^12 to "
            "10^12"),
]  # fmt: skip
Percent = Annotated[
    str,
    _parsed(),
    _within(PERCENT_PATTERN, "a percentage from 0 to 100"),
    _stated(PERCENT_PATTERN, "18", "a percentage: decimal string from 0 to 100"),
]
Fraction = Annotated[
    str,
    _parsed(),
    _within(FRACTION_PATTERN, "a rate at least 0 and below 1"),
    _stated(FRACTION_PATTERN, "0.05", "a rate: decimal string at least 0 and below 1"),
]
STORABLE_TEXT_PATTERN = r"^[^\x00]*$"
"""Text PostgreSQL can store: no NUL character (and no unpaired surrogate, which the pattern
cannot say; JSON can carry both as escapes, neither has a UTF-8 form)."""


def _storable(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("invalid_text", "text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "invalid_text", "text must be valid Unicode (an unpaired surrogate is not)"
        ) from None
    return value


StorableText = Annotated[
    str, AfterValidator(_storable), Field(json_schema_extra={"pattern": STORABLE_TEXT_PATTERN})
]


def _whole(value: object) -> object:
    """JSON's integers: 6 and 6.0 (JSON Schema counts both), never "6" or true."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("int_type", "Input should be a whole number")
    return value


WHOLE = BeforeValidator(_whole)
"""After an int's bounds in ``Annotated[int, Field(ge=..), WHOLE]``: bounds placed after the
validator would not reach the schema as ``minimum``/``maximum``."""
TIME_ZONES = frozenset(zoneinfo.available_timezones())


def _known_zone(value: str) -> str:
    if value not in TIME_ZONES:
        raise PydanticCustomError("invalid_time_zone", "unknown IANA time zone {value}",
                                  {"value": value})  # fmt: skip
    return value


TimeZone = Annotated[
    str,
    AfterValidator(_known_zone),
    Field(json_schema_extra={"enum": sorted(TIME_ZONES)},
          description="an IANA time zone name, e.g. Asia/Kolkata"),
]  # fmt: skip
Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]


class KeysByPatternOnly:
    """A mapping's JSON Schema allows no key but its keys' pattern (pydantic states the pattern
    as ``patternProperties`` and leaves every other key open)."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> Any:
        schema = handler(core_schema)
        schema["additionalProperties"] = False
        return schema


RateCard = Annotated[dict[Key, Money], KeysByPatternOnly()]
Currency = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    Field(json_schema_extra={"enum": sorted(PAYABLE_CURRENCIES)},
          description="an ISO 4217 currency with a minor unit"),
]  # fmt: skip
UNIT_PATTERN = r"^[A-Z][A-Z0-9_]{2,15}$"
Unit = Annotated[
    str,
    StringConstraints(pattern=UNIT_PATTERN),
    Field(description="an ISO 4217 currency, or a unit of account of LEDGER_CREDIT_RATES"),
]


def document_units(schema: dict[str, Any], units: list[str]) -> None:
    """State in ``schema`` (the OpenAPI document) which units this service keeps wallets in:
    an ISO 4217 currency or one of ``units`` (its ``LEDGER_CREDIT_RATES``), which only the
    running service knows."""
    stated = {"type": "string", "enum": sorted({*PAYABLE_CURRENCIES, *units})}
    for component in schema.get("components", {}).get("schemas", {}).values():
        for name, prop in component.get("properties", {}).items():
            if prop.get("pattern") == UNIT_PATTERN:
                component["properties"][name] = {**stated, "description": prop.get("description")}


Text = Annotated[StorableText, StringConstraints(max_length=500)]
RequiredText = Annotated[StorableText, StringConstraints(min_length=1, max_length=500)]


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
    grants: str = Field(description="what is left of the active credit grants together")
    prepaid: str
    postpaid_used: str


class CompanyBalanceOut(BaseModel):
    """All of a company's pools together: its shared pool and any legacy per-sender pools."""

    company_id: str
    billing_model: Literal["shared", "per_sender"]
    """``shared``: the company has a shared pool (legacy pools, if any, are added to it);
    ``per_sender``: only legacy pools, one per sender."""
    pools: int
    currency: str
    balance: str
    available: str
    postpaid_limit: str
    held: str
    buckets: Buckets
    stale: bool = False
    """True when the read did not finish within its time budget: these are the last figures
    read (at ``position``)."""
    position: int


class HoldOut(BaseModel):
    hold_id: UUID
    company_id: str
    status: Literal["active", "settled", "released", "expired"]
    reference: str = Field(description="the CloudEvents id of the message the hold is for")
    source: str | None = Field(description="the CloudEvents source it must come from, if set")
    waba_id: str
    category: str
    units: int
    amount: str = Field(description="the rate-card price of the units, reserved")
    currency: str
    expires_at: datetime
    available: str | None = Field(
        default=None, description="writes: the wallet's available balance right after"
    )
    position: int | None = Field(
        default=None, description="writes: the event-store position (read-your-writes)"
    )


class ConsumptionOut(BaseModel):
    company_id: str
    feature: str
    units: int
    reference: str
    unit_price: str
    amount: str
    currency: str
    split: dict[str, str] = Field(
        description="where the amount came from: included, grants, prepaid, postpaid"
    )
    balance: str = Field(description="the wallet's balance right after")
    available: str = Field(description="the wallet's available balance right after")
    position: int | None = Field(
        default=None, description="the event-store position (read-your-writes)"
    )


class GrantOut(BaseModel):
    id: UUID
    company_id: str
    status: Literal["active", "expired", "voided"]
    amount: str = Field(description="what was granted")
    remaining: str = Field(description="what usage has not drained yet")
    priority: int = Field(description="drained lower first, then soonest expiry, then oldest")
    expires_at: datetime | None
    granted_at: datetime
    reason: str
    reference: str
    granted_by: str
    position: int | None = Field(
        default=None, description="writes: the event-store position (read-your-writes)"
    )


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
    grants: list[GrantOut] = Field(description="active credit grants, in drain order")
    held: str = Field(description="what active holds reserve (deducted from available)")
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


class WalletWriteOut(BaseModel):
    company_id: str
    wallet_id: UUID | None = None
    position: int | None = Field(description="read-your-writes: pass as min_position")


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


class PaymentOrderOut(BaseModel):
    """A card payment attempt for an invoiced top-up; the payer completes it at
    ``checkout_url``, and the provider's signed webhook moves it on."""

    id: UUID
    topup_id: UUID
    company_id: str
    provider: str
    status: Literal["created", "succeeded", "failed", "expired", "needs_review"]
    amount_total: str
    currency: str
    checkout_url: str | None
    failure_reason: str | None = None
    """Why it failed (the provider's decline) or needs review (what was paid instead)."""
    position: int | None = Field(
        default=None, description="event-store position of the write (for min_position)"
    )

    @classmethod
    def of(cls, state: Mapping[str, Any]) -> PaymentOrderOut:
        """From the service's state or a row of ``rm_payment_orders`` (same names)."""
        return cls(id=state["payment_order_id"], **state)


class PackOut(BaseModel):
    name: str
    currency: str
    amount: str
    bonus: str
    position: int | None = Field(
        default=None, description="event-store position of the write (for min_position)"
    )


class WebhookOut(BaseModel):
    outcome: Literal["applied", "ignored"]
    """``ignored``: an event type the ledger does not act on, or an order already final."""
    payment_order_id: UUID | None = None
    status: Literal["created", "succeeded", "failed", "expired", "needs_review"] | None = None


TopupStatusName = Literal[
    "pending", "invoiced", "completed", "rejected", "cancelled", "needs_review"
]


class TopupOut(BaseModel):
    id: UUID
    company_id: str
    status: TopupStatusName = Field(
        description="needs_review: held by the risk review (review_rules) for an operator"
    )
    review_rules: list[str] | None = Field(
        default=None,
        description="the risk rules that held it: amount_above_threshold, "
        "too_many_requests_24h, new_company",
    )
    credit_unit: str | None = Field(
        default=None,
        description="a wallet kept in a unit of account: the invoice is in money (amount, "
        "currency, total), the wallet is credited `credits` of this unit, bought at "
        "`credit_rate` units per unit of the currency (the rate when it was requested)",
    )
    credit_rate: str | None = None
    credits: str | None = None
    amount: str | None = None
    """Credited to the wallet when paid."""
    tax: str | None = None
    fee: str | None = None
    total: str | None = None
    """What the payer is charged: amount + tax + fee (each rounded half-even to the minor unit)."""
    pack: str | None = None
    bonus: str | None = None
    """Credited as a grant (from promotions) when the top-up is paid, if it buys a pack."""
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
    payment_order: PaymentOrderOut | None = Field(
        default=None, description="card top-ups: the payment order just created"
    )
    position: int | None = Field(
        default=None, description="writes: the event-store position (read-your-writes)"
    )


class TopupsPage(BaseModel):
    items: list[TopupOut]
    next_cursor: str | None


# -- adjustments ----------------------------------------------------------------------------


class AdjustmentOut(BaseModel):
    id: UUID
    company_id: str
    status: Literal["pending_approval", "applied", "rejected"]
    direction: Literal["credit", "debit"]
    bucket: Literal["prepaid", "postpaid_used"]
    amount: str
    reason: str
    requested_by: str
    approved_by: str | None
    rejected_by: str | None
    rejection_reason: str
    position: int | None = Field(
        default=None, description="writes: the event-store position (read-your-writes)"
    )


class RefundOut(BaseModel):
    id: UUID
    company_id: str
    usage: dict[str, str] = Field(description="the refunded usage event: source and id")
    amount: str = Field(description="what the usage event was charged, given back in full")
    returned_to: dict[str, str] = Field(
        description="where it went: included quota, prepaid, postpaid (debt repaid)"
    )
    reason: str
    refunded_by: str
    position: int | None = Field(
        default=None, description="writes: the event-store position (read-your-writes)"
    )


# -- transfers and admin --------------------------------------------------------------------


class TransferOut(BaseModel):
    transfer_id: UUID
    from_company_id: str
    to_company_id: str
    amount: str
    commission: str
    net_amount: str
    gift_type: str | None = None
    message: str = ""
    position: int | None


class CirculationOut(BaseModel):
    wallets: int
    included: str
    grants: str
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


class AdminEntryOut(EntryOut):
    company_id: str


class EntrySummaryRow(BaseModel):
    kind: str
    direction: Literal["credit", "debit"]
    count: int
    amount: str = Field(description="signed sum: negative for debits")


class AdminTransactionsPage(BaseModel):
    items: list[AdminEntryOut]
    next_cursor: str | None = Field(description="pass as cursor for the next (older) page")
    summary: list[EntrySummaryRow] | None = Field(
        description="every entry matching the filters (not only this page) by kind and "
        "direction; null unless the filters are bounded by company or by from"
    )


class CompanyLedgerTotals(BaseModel):
    """Where a company's money came from and went, over all its pools, in one currency;
    purchased + granted + refunded + transferred_in - transferred_out + adjusted - used -
    expired = balance."""

    entries: int
    purchased: str = Field(description="paid top-ups credited")
    granted: str = Field(description="grants, including each cycle's included quota")
    refunded: str = Field(description="usage charges given back")
    transferred_in: str
    transferred_out: str
    adjusted: str = Field(description="operators' corrections, net (negative: taken out)")
    used: str = Field(description="usage charged")
    expired: str = Field(description="unused quota and grant remainders expired or voided")
    balance: str


class CompanyLedgerOut(BaseModel):
    company_id: str
    currencies: dict[str, CompanyLedgerTotals] = Field(description="per currency")
    position: int = Field(description="the newest entry these totals include (0: none)")


class TransferRecordOut(BaseModel):
    id: UUID
    from_company_id: str
    to_company_id: str
    currency: str
    amount: str = Field(description="taken from the sender")
    commission: str
    net_amount: str = Field(description="given to the receiver: amount - commission")
    note: str
    gift_type: str | None = Field(description="tenant transfers: what the gift is")
    message: str = Field(description="tenant transfers: the sender's message")
    actor: str
    occurred_at: datetime
    position: int


class TransferTotals(BaseModel):
    count: int
    amount: str
    commission: str
    net_amount: str
    sent: str = Field(description="the company's sent amount (0 without company)")
    received: str = Field(description="the company's received net amount (0 without company)")


class TransfersPage(BaseModel):
    items: list[TransferRecordOut]
    next_cursor: str | None = Field(description="pass as cursor for the next (older) page")
    totals: dict[str, TransferTotals] | None = Field(
        description="per currency, of every transfer the filters match (not only this page); "
        "null unless the filters are bounded by company or by from"
    )


class PoolMergeOut(BaseModel):
    sender: str
    status: Literal["planned", "merged", "already_merged"]
    included: str
    prepaid: str
    debt: str = Field(description="postpaid credit used, moved as debt")


class PoolMigrationOut(BaseModel):
    company_id: str
    dry_run: bool
    shared_wallet: Literal["existing", "opened", "to_open"]
    pools: list[PoolMergeOut]
    moved: str = Field(description="the balance the merged (dry run: planned) pools brought")


class LegacyPoolOut(BaseModel):
    company_id: str
    sender: str
    senders: list[str]
    currency: str
    balance: str


class PoolCoverageOut(BaseModel):
    remaining: list[LegacyPoolOut] = Field(
        description="per-sender pools still in use, by company and sender (at most `limit`)"
    )
