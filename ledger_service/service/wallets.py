"""Wallet and sender commands: open, configure, link and unlink senders, operator credits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, NotRequired, TypedDict

from eventsourcing.domain import Aggregate

from ledger_service.domain import accounts
from ledger_service.domain.errors import InvalidArgument
from ledger_service.domain.ids import check_key
from ledger_service.domain.money import ZERO, parse_amount, parse_currency, parse_unit
from ledger_service.domain.policies import (
    RENOTIFY_PER_CROSSING,
    AlertSettings,
    AutoTopup,
    CycleAnchor,
    SpendingCap,
    TransferPolicy,
    alert_settings_from,
    auto_topup_from,
    check_spending_caps,
    cycle_anchor_from,
    transfer_policy_from,
)
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
        set_field(self, "currency", parse_unit(self.currency))
        set_field(self, "mode", parse_enum(PoolMode, self.mode, "mode"))
        set_field(self, "postpaid_limit", parse_amount(self.postpaid_limit, field="postpaid_limit"))
        set_field(self, "included_quota", parse_amount(self.included_quota, field="included_quota"))

    def scope(self, ledger: LedgerApplication) -> str:
        return self.company_id

    def decide(self, ledger: LedgerApplication) -> Decision[WalletOpened]:
        if self.currency not in ledger.credit_rates:
            parse_currency(self.currency)  # not a unit of account: a currency
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

    A policy section replaces that whole policy. Sections may be given as typed values or as
    request-shaped mappings (``alerts``: ``low_balance_threshold``, ``low_balance_percent``,
    ``burn_limit_24h``, ``renotify``; ``auto_topup``: ``enabled``, ``trigger_balance``, ``amount``,
    ``auto_approve``; ``spending_caps``: category -> ``units`` and/or ``amount`` per day;
    ``cycle``: ``anchor_day``, ``anchor_time``, ``time_zone``; ``transfers``: ``daily_limit``),
    which the domain validates and completes with its defaults on construction."""

    name: ClassVar[str] = "configure_wallet"
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"company_id"})

    company_id: str
    pool_sender_id: str | None = None
    postpaid_limit: Decimal | None = None
    included_quota: Decimal | None = None
    rate_card: Mapping[str, Decimal] | None = None
    alerts: AlertSettings | None = None
    auto_topup: AutoTopup | None = None
    spending_caps: Mapping[str, SpendingCap] | None = None
    cycle: CycleAnchor | None = None
    tax_percent: Decimal | None = None
    """The tax on this wallet's top-ups, in percent (instead of the service's)."""
    transfers: TransferPolicy | None = None
    """``daily_limit``: the most tenant transfers may send per day (null: no limit)."""

    def __post_init__(self) -> None:
        changes = (
            self.postpaid_limit, self.included_quota, self.rate_card, self.alerts, self.tax_percent
        )  # fmt: skip
        policies = (self.auto_topup, self.spending_caps, self.cycle, self.transfers)
        if all(change is None for change in (*changes, *policies)):
            raise InvalidArgument("nothing to change")
        for name in ("postpaid_limit", "included_quota", "tax_percent"):
            value = getattr(self, name)
            if value is not None:
                set_field(self, name, parse_amount(value, field=name))
        _typed_section(self, "alerts", AlertSettings, alert_settings_from)
        _typed_section(self, "auto_topup", AutoTopup, auto_topup_from)
        _typed_section(self, "cycle", CycleAnchor, cycle_anchor_from)
        _typed_section(self, "transfers", TransferPolicy, transfer_policy_from)
        caps = self.spending_caps
        if caps is not None and not all(isinstance(c, SpendingCap) for c in caps.values()):
            set_field(self, "spending_caps", check_spending_caps(dict(caps)))

    def fingerprint_fields(self) -> dict[str, object]:
        """Sections in their request shape, as the first release fingerprinted them."""
        fields = super().fingerprint_fields()
        fields["auto_topup"] = None if self.auto_topup is None else asdict(self.auto_topup)
        alerts = None if self.alerts is None else asdict(self.alerts)
        if alerts is not None and alerts["renotify"] == RENOTIFY_PER_CROSSING:
            del alerts["renotify"]  # keys recorded before it existed still replay
        fields["alerts"] = alerts
        caps = self.spending_caps
        fields["spending_caps"] = (
            None if caps is None else {k: c.as_dict() for k, c in caps.items()}
        )
        if fields["tax_percent"] is None:  # keys recorded before it existed still replay
            del fields["tax_percent"]
        del fields["transfers"]
        if self.transfers is not None:  # (likewise)
            fields["transfers"] = asdict(self.transfers)
        cycle = self.cycle
        fields["cycle"] = None if cycle is None else {
            "anchor_day": cycle.day, "anchor_time": cycle.at, "time_zone": cycle.time_zone
        }  # fmt: skip
        return fields

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
        if self.tax_percent is not None:
            wallet.change_tax_rate(self.tax_percent, actor=self.actor)
        self._configure_policies(wallet)
        return Decision([wallet], {"company_id": self.company_id})

    def _configure_policies(self, wallet: Wallet) -> None:
        if self.alerts is not None:
            wallet.configure_alerts(**asdict(self.alerts), actor=self.actor)
        if self.auto_topup is not None:
            wallet.configure_auto_topup(**asdict(self.auto_topup), actor=self.actor)
        if self.spending_caps is not None:
            caps = {category: cap.as_dict() for category, cap in self.spending_caps.items()}
            wallet.change_spending_caps(caps, actor=self.actor)
        if self.cycle is not None:
            wallet.change_cycle_anchor(self.cycle, actor=self.actor)
        if self.transfers is not None:
            wallet.change_transfer_limit(self.transfers.daily_limit, actor=self.actor)


def _typed_section(
    command: ConfigureWallet, name: str, kind: type[Any], parse: Callable[[Mapping[str, Any]], Any]
) -> None:
    value = getattr(command, name)
    if value is not None and not isinstance(value, kind):
        set_field(command, name, parse(value))


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
