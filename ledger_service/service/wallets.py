"""Wallet and sender commands: open, configure, link and unlink senders, operator credits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, NotRequired, TypedDict

from eventsourcing.domain import Aggregate

from ledger_service.domain import accounts
from ledger_service.domain.errors import InvalidArgument
from ledger_service.domain.ids import check_key
from ledger_service.domain.money import ZERO, parse_amount, parse_currency
from ledger_service.domain.policies import LOW_BALANCE_PERCENT_DEFAULT, check_cycle_anchor
from ledger_service.domain.topup import check_text
from ledger_service.domain.wallet import CreditBucket, CreditKind, PoolMode, Wallet
from ledger_service.service.runner import Command, Decision
from ledger_service.service.values import parse_enum, set_field

if TYPE_CHECKING:
    from ledger_service.service.ledger import LedgerApplication

CREDIT_COUNTER_ACCOUNTS = {
    CreditKind.GRANT: accounts.PROMOTIONS,
    CreditKind.REFUND: accounts.REFUNDS,
    CreditKind.ADJUSTMENT: accounts.ADJUSTMENTS,
}
"""Operator credits and the account each one is booked against; top-up and transfer credits
only come from their own commands."""


class WalletOpened(TypedDict):
    wallet_id: str
    company_id: str
    position: NotRequired[int | None]


class WalletChanged(TypedDict):
    company_id: str
    position: NotRequired[int | None]


class SenderChanged(TypedDict):
    company_id: str
    waba_id: str
    position: NotRequired[int | None]


@dataclass(frozen=True, kw_only=True)
class OpenWallet(Command[WalletOpened]):
    """Open a wallet; the first cycle's included quota is granted at once."""

    name: ClassVar[str] = "open_wallet"

    company_id: str
    currency: str
    mode: PoolMode = PoolMode.SHARED
    postpaid_limit: Decimal = ZERO
    included_quota: Decimal = ZERO
    rate_card: Mapping[str, Decimal] = field(default_factory=dict)
    pool_sender_id: str | None = None

    def __post_init__(self) -> None:
        set_field(self, "currency", parse_currency(self.currency))
        set_field(self, "mode", parse_enum(PoolMode, self.mode, "mode"))
        set_field(self, "postpaid_limit", parse_amount(self.postpaid_limit, field="postpaid_limit"))
        set_field(self, "included_quota", parse_amount(self.included_quota, field="included_quota"))

    def scope(self, ledger: LedgerApplication) -> str:
        return self.company_id

    def decide(self, ledger: LedgerApplication) -> Decision[WalletOpened]:
        wallet = Wallet.open(
            company_id=self.company_id,
            currency=self.currency,
            mode=self.mode,
            postpaid_limit=self.postpaid_limit,
            included_quota=self.included_quota,
            rate_card=dict(self.rate_card),
            actor=self.actor,
            pool_sender_id=self.pool_sender_id,
        )
        ledger.check_wallet_absent(wallet.id, self.company_id)
        if wallet.included_quota > 0:
            wallet.credit(
                wallet.included_quota,
                bucket=CreditBucket.INCLUDED,
                kind=CreditKind.GRANT,
                counter_account=accounts.PROMOTIONS,
                reference="included-quota:opening",
                actor=self.actor,
            )
        aggregates: list[Aggregate] = [wallet]
        if self.pool_sender_id is not None:
            aggregates.append(ledger.link(wallet, self.pool_sender_id, self.actor))
        return Decision(aggregates, {"wallet_id": str(wallet.id), "company_id": self.company_id})


@dataclass(frozen=True, kw_only=True)
class SenderCommand(Command[SenderChanged]):
    """A change to which wallet a sender (WABA) draws from."""

    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"company_id"})

    company_id: str
    waba_id: str
    pool_sender_id: str | None = None

    def scope(self, ledger: LedgerApplication) -> str:
        return self.company_id

    def result(self) -> SenderChanged:
        return {"company_id": self.company_id, "waba_id": self.waba_id}


@dataclass(frozen=True, kw_only=True)
class LinkSender(SenderCommand):
    """Link a sender to a wallet; a sender belongs to at most one wallet at a time."""

    name: ClassVar[str] = "link_sender"

    def decide(self, ledger: LedgerApplication) -> Decision[SenderChanged]:
        wallet = ledger.get_wallet(self.company_id, self.pool_sender_id)
        registration = ledger.link(wallet, check_key(self.waba_id, "waba_id"), self.actor)
        return Decision([wallet, registration], self.result())


@dataclass(frozen=True, kw_only=True)
class UnlinkSender(SenderCommand):
    name: ClassVar[str] = "unlink_sender"

    def decide(self, ledger: LedgerApplication) -> Decision[SenderChanged]:
        wallet = ledger.get_wallet(self.company_id, self.pool_sender_id)
        wallet.unlink_sender(self.waba_id, actor=self.actor)
        registration = ledger.get_sender_registration(self.waba_id)
        registration.release(wallet_id=wallet.id, actor=self.actor)
        return Decision([wallet, registration], self.result())


@dataclass(frozen=True, kw_only=True)
class ConfigureWallet(Command[WalletChanged]):
    """Change limits, quota, rate card and policies; each change is an event.

    ``alerts``: ``low_balance_threshold`` (absolute, or null for the percentage),
    ``low_balance_percent``, ``burn_limit_24h``; ``auto_topup``: ``enabled``,
    ``trigger_balance``, ``amount``, ``auto_approve``; ``spending_caps``: category ->
    ``units`` and/or ``amount`` per day; ``cycle``: ``anchor_day``, ``anchor_time``,
    ``time_zone``. A section replaces that whole policy; omitted keys take defaults."""

    name: ClassVar[str] = "configure_wallet"
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"company_id"})

    company_id: str
    pool_sender_id: str | None = None
    postpaid_limit: Decimal | None = None
    included_quota: Decimal | None = None
    rate_card: Mapping[str, Decimal] | None = None
    alerts: Mapping[str, Any] | None = None
    auto_topup: Mapping[str, Any] | None = None
    spending_caps: Mapping[str, Mapping[str, Any]] | None = None
    cycle: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        changes = (self.postpaid_limit, self.included_quota, self.rate_card, self.alerts)
        policies = (self.auto_topup, self.spending_caps, self.cycle)
        if all(change is None for change in (*changes, *policies)):
            raise InvalidArgument("nothing to change")
        for name in ("postpaid_limit", "included_quota"):
            value = getattr(self, name)
            if value is not None:
                set_field(self, name, parse_amount(value, field=name))

    def scope(self, ledger: LedgerApplication) -> str:
        return self.company_id

    def decide(self, ledger: LedgerApplication) -> Decision[WalletChanged]:
        wallet = ledger.get_wallet(self.company_id, self.pool_sender_id)
        if self.postpaid_limit is not None:
            wallet.change_postpaid_limit(self.postpaid_limit, actor=self.actor)
        if self.included_quota is not None:
            wallet.change_included_quota(self.included_quota, actor=self.actor)
        if self.rate_card is not None:
            wallet.change_rate_card(dict(self.rate_card), actor=self.actor)
        configure_policies(
            wallet,
            alerts=self.alerts,
            auto_topup=self.auto_topup,
            spending_caps=self.spending_caps,
            cycle=self.cycle,
            actor=self.actor,
        )
        return Decision([wallet], {"company_id": self.company_id})


@dataclass(frozen=True, kw_only=True)
class CreditWallet(Command[WalletChanged]):
    """Operator credits outside the top-up flow: grants, refunds, adjustments."""

    name: ClassVar[str] = "credit_wallet"
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"company_id"})

    company_id: str
    amount: Decimal
    kind: CreditKind
    bucket: CreditBucket = CreditBucket.PREPAID
    reference: str
    pool_sender_id: str | None = None

    def __post_init__(self) -> None:
        kind = parse_enum(CreditKind, self.kind, "kind")
        if kind not in CREDIT_COUNTER_ACCOUNTS:
            raise InvalidArgument(f"{kind} credits only come from top-ups and transfers")
        set_field(self, "kind", kind)
        set_field(self, "amount", parse_amount(self.amount, allow_zero=False))
        set_field(self, "bucket", parse_enum(CreditBucket, self.bucket, "bucket"))

    def scope(self, ledger: LedgerApplication) -> str:
        return self.company_id

    def decide(self, ledger: LedgerApplication) -> Decision[WalletChanged]:
        wallet = ledger.get_wallet(self.company_id, self.pool_sender_id)
        wallet.credit(
            self.amount,
            bucket=self.bucket,
            kind=self.kind,
            counter_account=CREDIT_COUNTER_ACCOUNTS[self.kind],
            reference=check_text(self.reference, "reference", 200),
            actor=self.actor,
        )
        return Decision([wallet], {"company_id": self.company_id})


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
        anchor = check_cycle_anchor(
            cycle.get("anchor_day", 1),
            cycle.get("anchor_time", "00:00"),
            cycle.get("time_zone", "UTC"),
        )
        wallet.change_cycle_anchor(anchor, actor=actor)


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
