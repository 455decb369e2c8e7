"""Request models of the HTTP API (``/v1``): validation and defaults at the edge, and
``to_command()``, which builds the service layer's command from a validated request.

Money travels as decimal strings; a JSON number where money is expected is refused with
``INVALID_AMOUNT``. Unknown fields are refused, so a typo never silently drops part of a request.
Policy sections take their defaults from the domain's constants, so they are declared once.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)

from ledger_service.domain.adjustment import AdjustedBucket, Direction
from ledger_service.domain.grants import PRIORITY_DEFAULT, PRIORITY_MAX
from ledger_service.domain.holds import TTL_DEFAULT_S, TTL_MAX_S, UNITS_MAX
from ledger_service.domain.money import POSITIVE_AMOUNT_PATTERN, format_amount
from ledger_service.domain.policies import (
    ANCHOR_DAY_MAX,
    AUTO_TOPUP_SECTION_ENABLED_DEFAULT,
    LOW_BALANCE_PERCENT_DEFAULT,
    CycleAnchor,
    alert_settings_from,
    auto_topup_from,
    check_spending_caps,
    cycle_anchor_from,
    transfer_policy_from,
)
from ledger_service.domain.transfer import GIFT_MESSAGE_LENGTH_MAX
from ledger_service.domain.wallet import PoolMode
from ledger_service.service.adjustments import RejectAdjustment, RequestAdjustment
from ledger_service.service.consumption import (
    REFERENCE_LENGTH_MAX as CONSUMPTION_REFERENCE_LENGTH_MAX,
)
from ledger_service.service.consumption import ConsumeFeature
from ledger_service.service.consumption import idempotency_key_of as consumption_key
from ledger_service.service.grants import REFERENCE_LENGTH_MAX, IssueGrant
from ledger_service.service.holds import PlaceHold
from ledger_service.service.packs import DefinePack
from ledger_service.service.refunds import RefundUsage
from ledger_service.service.topups import (
    CancelTopup,
    MarkTopupPaid,
    RejectTopup,
    ReleaseTopup,
    RequestTopup,
)
from ledger_service.service.transfers import SendTransfer, TransferMoney
from ledger_service.service.wallets import ConfigureWallet, LinkSender, OpenWallet
from schemas.api import (
    WHOLE,
    Currency,
    Fraction,
    Key,
    KeysByPatternOnly,
    Money,
    Percent,
    PositiveMoney,
    RateCard,
    RequiredText,
    SignedMoney,
    StorableText,
    Text,
    TimeZone,
    Unit,
)


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _prices(prices: dict[str, str]) -> dict[str, Decimal]:
    return {category: Decimal(price) for category, price in prices.items()}


def _optional_decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _some_set(*names: str) -> Callable[[dict[str, Any]], None]:
    """JSON Schema for "at least one of ``names`` (all properties if none named) is given and
    not null"."""

    def state(schema: dict[str, Any]) -> None:
        schema["anyOf"] = [
            {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
            for name in names or schema["properties"]
        ]

    return state


class AlertSettingsIn(Request):
    low_balance_threshold: Money | None = Field(
        None, description="absolute; when null the percentage of the cycle's funding applies"
    )
    low_balance_percent: Percent = format_amount(LOW_BALANCE_PERCENT_DEFAULT)
    burn_limit_24h: PositiveMoney | None = Field(None, description="rapid-burn alert above this")
    renotify: Literal["per_crossing", "once_per_cycle"] = Field(
        "per_crossing",
        description="per_crossing: the low-balance and below-zero warnings fire on every "
        "crossing; once_per_cycle: at most once per billing cycle each",
    )


class AutoTopupIn(Request):
    # An enabled auto top-up needs an amount above zero (a disabled one may keep "0").
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"enabled": {"const": False}}, "required": ["enabled"]},
            "else": {
                "properties": {"amount": {"pattern": POSITIVE_AMOUNT_PATTERN}},
                "required": ["amount"],
            },
        },
    )
    enabled: StrictBool = AUTO_TOPUP_SECTION_ENABLED_DEFAULT
    trigger_balance: SignedMoney = Field(
        "0", description="request a top-up when balance goes below (negative: into credit)"
    )
    amount: Money = "0"
    auto_approve: StrictBool = False


class SpendingCapIn(Request):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_some_set("units", "amount"))
    units: Annotated[int, Field(ge=1, le=1_000_000_000), WHOLE] | None = None
    amount: PositiveMoney | None = None
    hard: StrictBool = Field(
        False,
        description="also refuse synchronous consumption (POST /v1/wallets/{id}/consume) that "
        "would pass the cap; message usage is never refused",
    )


class CycleIn(Request):
    anchor_day: Annotated[int, Field(ge=1, le=ANCHOR_DAY_MAX), WHOLE] = CycleAnchor().day
    anchor_time: Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = (
        CycleAnchor().at
    )
    time_zone: TimeZone = CycleAnchor().time_zone


class OpenWalletIn(Request):
    # A per_sender pool names its sender; a shared one does not.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"mode": {"const": "per_sender"}}, "required": ["mode"]},
            "then": {"required": ["pool_sender_id"],
                     "properties": {"pool_sender_id": {"type": "string"}}},
            "else": {"properties": {"pool_sender_id": {"type": "null"}}},
        },
    )  # fmt: skip
    company_id: Key
    currency: Unit
    mode: Literal["shared", "per_sender"] = "shared"
    pool_sender_id: Key | None = None
    postpaid_limit: Money = "0"
    included_quota: Money = "0"
    rate_card: RateCard = Field(default_factory=dict)

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


class TransfersIn(Request):
    daily_limit: Money | None = Field(
        None, description="the most tenant transfers may send per day; null: no limit"
    )


class ConfigureWalletIn(Request):
    # A PATCH that changes nothing is refused.
    model_config = ConfigDict(extra="forbid", json_schema_extra=_some_set())
    postpaid_limit: Money | None = None
    included_quota: Money | None = None
    rate_card: RateCard | None = None
    alerts: AlertSettingsIn | None = None
    auto_topup: AutoTopupIn | None = None
    spending_caps: Annotated[dict[Key, SpendingCapIn], KeysByPatternOnly()] | None = Field(
        None, description="daily caps per category; {} removes all"
    )
    cycle: CycleIn | None = None
    tax_percent: Percent | None = Field(
        None,
        description='tax added to top-up invoices, in percent (e.g. "18"), instead of the '
        "service's LEDGER_TOPUP_TAX_PERCENT",
    )
    transfers: TransfersIn | None = None

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
            tax_percent=_optional_decimal(self.tax_percent),
            transfers=None
            if self.transfers is None
            else transfer_policy_from(self.transfers.model_dump()),
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


class TopupRequestIn(Request):
    company_id: Key
    amount: PositiveMoney
    currency: Currency
    note: Text = ""
    pack: Key | None = Field(
        default=None, description="a pack of this currency (GET /v1/packs); amount must be its"
    )
    payment_method: Literal["invoice", "card"] = Field(
        default="invoice",
        description="invoice: an operator approves and marks it paid; card: invoiced at once "
        "with a payment order whose checkout_url collects it",
    )

    def to_command(self, *, actor: str, idempotency_key: str) -> RequestTopup:
        return RequestTopup(
            company_id=self.company_id,
            amount=Decimal(self.amount),
            currency=self.currency,
            note=self.note,
            pack=self.pack,
            payment_method=self.payment_method,
            actor=actor,
            idempotency_key=idempotency_key,
        )


class PackIn(Request):
    name: Key
    currency: Currency
    amount: PositiveMoney
    bonus: Money = "0"

    def to_command(self, *, actor: str, idempotency_key: str) -> DefinePack:
        return DefinePack(
            pack_name=self.name, currency=self.currency, amount=Decimal(self.amount),
            bonus=Decimal(self.bonus), actor=actor, idempotency_key=idempotency_key,
        )  # fmt: skip


class RejectIn(Request):
    reason: RequiredText

    def to_command(self, topup_id: UUID, *, actor: str, idempotency_key: str) -> RejectTopup:
        return RejectTopup(
            topup_id=topup_id, reason=self.reason, actor=actor, idempotency_key=idempotency_key
        )


class ReleaseIn(Request):
    note: Text = ""

    def to_command(self, topup_id: UUID, *, actor: str, idempotency_key: str) -> ReleaseTopup:
        return ReleaseTopup(
            topup_id=topup_id, note=self.note, actor=actor, idempotency_key=idempotency_key
        )


class CancelIn(Request):
    reason: Text = ""

    def to_command(
        self, topup_id: UUID, *, actor: str, idempotency_key: str, tenant_company_id: str | None
    ) -> CancelTopup:
        return CancelTopup(
            topup_id=topup_id,
            reason=self.reason,
            tenant_company_id=tenant_company_id,
            actor=actor,
            idempotency_key=idempotency_key,
        )


class MarkPaidIn(Request):
    payment_reference: Annotated[StorableText, StringConstraints(min_length=1, max_length=200)]

    def to_command(self, topup_id: UUID, *, actor: str, idempotency_key: str) -> MarkTopupPaid:
        return MarkTopupPaid(
            topup_id=topup_id,
            payment_reference=self.payment_reference,
            actor=actor,
            idempotency_key=idempotency_key,
        )


class AdjustmentIn(Request):
    direction: Literal["credit", "debit"]
    amount: PositiveMoney
    bucket: Literal["prepaid", "postpaid_used"]
    reason: RequiredText

    def to_command(self, company_id: str, *, actor: str, idempotency_key: str) -> RequestAdjustment:
        return RequestAdjustment(
            company_id=company_id,
            direction=Direction(self.direction),
            amount=Decimal(self.amount),
            bucket=AdjustedBucket(self.bucket),
            reason=self.reason,
            actor=actor,
            idempotency_key=idempotency_key,
        )


class AdjustmentRejectIn(Request):
    reason: RequiredText

    def to_command(
        self, company_id: str, adjustment_id: UUID, *, actor: str, idempotency_key: str
    ) -> RejectAdjustment:
        return RejectAdjustment(
            company_id=company_id,
            adjustment_id=adjustment_id,
            reason=self.reason,
            actor=actor,
            idempotency_key=idempotency_key,
        )


Units = Annotated[int, Field(ge=1, le=UNITS_MAX), WHOLE]
CloudEventsText = Annotated[StorableText, StringConstraints(min_length=1, max_length=256)]


class ConsumeIn(Request):
    feature: Key = Field(description="a category of the wallet's rate card, e.g. ai_summary")
    units: Units
    reference: Annotated[
        StorableText,
        StringConstraints(min_length=1, max_length=CONSUMPTION_REFERENCE_LENGTH_MAX),
    ] = Field(
        description="the caller's id for this use: one charge per reference and company "
        "(a retry with the same body is answered with the first charge, another body is 409)"
    )

    def to_command(self, company_id: str, *, actor: str) -> ConsumeFeature:
        return ConsumeFeature(
            company_id=company_id,
            feature=self.feature,
            units=self.units,
            reference=self.reference,
            actor=actor,
            idempotency_key=consumption_key(self.reference),
        )


class HoldIn(Request):
    waba_id: Key
    category: Key
    units: Units
    reference: CloudEventsText = Field(
        description="the CloudEvents id the sender will publish for this message"
    )
    source: CloudEventsText | None = Field(
        None, description="the CloudEvents source it will come from; any source when absent"
    )
    ttl_s: Annotated[int, Field(ge=1, le=TTL_MAX_S), WHOLE] = TTL_DEFAULT_S

    def to_command(self, company_id: str, *, actor: str, idempotency_key: str) -> PlaceHold:
        return PlaceHold(
            company_id=company_id,
            waba_id=self.waba_id,
            category=self.category,
            units=self.units,
            reference=self.reference,
            source=self.source,
            ttl_s=self.ttl_s,
            actor=actor,
            idempotency_key=idempotency_key,
        )


class GrantIn(Request):
    amount: PositiveMoney
    reason: RequiredText
    reference: Annotated[
        StorableText, StringConstraints(min_length=1, max_length=REFERENCE_LENGTH_MAX)
    ] = Field(description="the operator's own id of this grant: one grant per reference")
    expires_at: AwareDatetime | None = Field(
        None, description="when the unused remainder expires; never when absent"
    )
    priority: Annotated[int, Field(ge=0, le=PRIORITY_MAX), WHOLE] = Field(
        PRIORITY_DEFAULT, description="grants with lower ones drain first"
    )

    def to_command(self, company_id: str, *, actor: str, idempotency_key: str) -> IssueGrant:
        return IssueGrant(
            company_id=company_id,
            amount=Decimal(self.amount),
            reason=self.reason,
            reference=self.reference,
            expires_at=self.expires_at,
            priority=self.priority,
            actor=actor,
            idempotency_key=idempotency_key,
        )


class UsageIdentity(Request):
    """A usage event's CloudEvents identity, as it was published."""

    source: CloudEventsText
    id: CloudEventsText


class RefundIn(Request):
    usage: UsageIdentity
    reason: RequiredText

    def to_command(self, company_id: str, *, actor: str, idempotency_key: str) -> RefundUsage:
        return RefundUsage(
            company_id=company_id,
            usage_source=self.usage.source,
            usage_id=self.usage.id,
            reason=self.reason,
            actor=actor,
            idempotency_key=idempotency_key,
        )


class PoolMigrationIn(Request):
    dry_run: StrictBool = Field(False, description="report what would move; write nothing")


class GiftIn(Request):
    to_company_id: Key
    amount: PositiveMoney
    gift_type: Key | None = Field(None, description="what the gift is, e.g. diamonds or rose")
    message: Annotated[StorableText, StringConstraints(max_length=GIFT_MESSAGE_LENGTH_MAX)] = ""

    def to_command(self, company_id: str, *, actor: str, idempotency_key: str) -> SendTransfer:
        return SendTransfer(
            from_company_id=company_id,
            to_company_id=self.to_company_id,
            amount=Decimal(self.amount),
            gift_type=self.gift_type,
            message=self.message,
            actor=actor,
            idempotency_key=idempotency_key,
        )


class TransferIn(Request):
    from_company_id: Key
    to_company_id: Key
    amount: PositiveMoney
    commission_rate: Fraction = "0"
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
