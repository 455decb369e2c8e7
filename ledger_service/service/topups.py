"""Top-up commands: request → approve (invoice) | reject | cancel → mark paid (credit), and the
auto top-up that turns an ``AutoTopupTriggered`` wallet event into a request exactly once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar, Literal, NotRequired, TypedDict
from uuid import UUID

from ledger_service.domain.credits import credits_bought
from ledger_service.domain.errors import (
    CurrencyMismatch,
    InvalidAmount,
    InvalidArgument,
    NotPermitted,
    TopupNotFound,
)
from ledger_service.domain.invoice import invoice_lines
from ledger_service.domain.money import format_amount, parse_amount, parse_currency
from ledger_service.domain.registry import InvoiceNumberClaim
from ledger_service.domain.risk import RISK_ACTOR
from ledger_service.domain.topup import TopupRequest, TopupStatus
from ledger_service.service.payments import (
    PaymentOrderState,
    open_payment_order,
    order_state,
    pay_topup,
)
from ledger_service.service.runner import Command, Decision, R
from ledger_service.service.values import set_field

if TYPE_CHECKING:
    from eventsourcing.domain import Aggregate

    from ledger_service.domain.wallet import Wallet
    from ledger_service.service.ledger import LedgerApplication

AUTO_TOPUP_ACTOR = "auto-topup"
TopupStatusText = Literal[
    "pending", "invoiced", "completed", "rejected", "cancelled", "needs_review"
]
PaymentMethod = Literal["invoice", "card"]


class TopupRequested(TypedDict):
    topup_id: str
    status: TopupStatusText
    company_id: NotRequired[str]
    credit_unit: NotRequired[str]
    """A wallet kept in a unit of account: ``credits`` of it are bought at ``credit_rate``."""
    credit_rate: NotRequired[str]
    credits: NotRequired[str]
    review_rules: NotRequired[list[str]]
    """When the risk review held it (``needs_review``): the rules it broke."""
    invoice_number: NotRequired[str | None]
    payment_order: NotRequired[PaymentOrderState]
    position: NotRequired[int | None]


class TopupChanged(TypedDict):
    topup_id: str
    company_id: str
    status: TopupStatusText
    invoice_number: str | None
    position: NotRequired[int | None]


def topup_result(topup: TopupRequest) -> TopupChanged:
    return {
        "topup_id": str(topup.id),
        "company_id": topup.company_id,
        "status": topup.status.value,
        "invoice_number": topup.invoice_number,
    }


def new_invoice_number(company_id: str, now: datetime | None = None) -> str:
    """``TOP-{yyyyMM}-{company}-{suffix}``; uniqueness is enforced by an InvoiceNumberClaim."""
    month = (now or datetime.now(UTC)).strftime("%Y%m")
    return f"TOP-{month}-{company_id}-{secrets.token_hex(4).upper()}"


@dataclass(frozen=True, kw_only=True)
class RequestTopup(Command[TopupRequested]):
    name: ClassVar[str] = "request_topup"
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"company_id"})

    company_id: str
    amount: Decimal
    currency: str
    note: str = ""
    pool_sender_id: str | None = None
    pack: str | None = None
    """The name of a pack of ``currency`` (see ``packs``): ``amount`` must be its amount."""
    payment_method: PaymentMethod = "invoice"
    """``invoice``: an operator approves, the payment arrives offline, an operator marks it
    paid. ``card``: invoiced at once, with a payment order whose checkout collects it."""
    risk_review: bool = True
    """False for the auto top-up: the operators configured it, there is nothing to review."""

    def __post_init__(self) -> None:
        set_field(self, "amount", parse_amount(self.amount, allow_zero=False))

    def fingerprint_fields(self) -> dict[str, object]:
        # Invoice requests fingerprint as before card payments existed (recorded keys replay).
        fields = super().fingerprint_fields()
        if self.payment_method == "invoice":
            del fields["payment_method"]
        if self.pack is None:
            del fields["pack"]
        del fields["risk_review"]  # who asks decides it, not the request
        return fields

    def scope(self, ledger: LedgerApplication) -> str:
        return self.company_id

    def decide(self, ledger: LedgerApplication) -> Decision[TopupRequested]:
        wallet = ledger.get_wallet(self.company_id, self.pool_sender_id)
        in_units = wallet.currency in ledger.credit_rates
        if not in_units and parse_currency(self.currency) != wallet.currency:
            raise CurrencyMismatch(
                f"top-up in {self.currency} for a wallet kept in {wallet.currency}"
            )
        if in_units and self.pack is not None:
            raise InvalidArgument(f"packs are sold for money wallets, not {wallet.currency}")
        minimum = ledger.topup_minimums.get(self.currency)
        if minimum is not None and self.amount < minimum:
            raise InvalidAmount(
                f"the smallest top-up in {self.currency} is {format_amount(minimum)}"
            )
        topup = TopupRequest.request(
            company_id=self.company_id,
            wallet_id=wallet.id,
            amount=self.amount,
            currency=self.currency,
            note=self.note,
            actor=self.actor,
            pack=None if self.pack is None else ledger.packs().pack(self.currency, self.pack),
        )
        if in_units:
            rate, credits = credits_bought(
                ledger.credit_rates, wallet.currency, parse_currency(self.currency), self.amount
            )
            topup.quote_credits(unit=wallet.currency, rate=rate, credits=credits)
        saved: list[Aggregate] = [topup]
        result = self._proceed(ledger, wallet, topup, saved)
        if topup.credits is not None and topup.credit_rate is not None:
            result["credit_unit"] = wallet.currency
            result["credit_rate"] = format_amount(topup.credit_rate)
            result["credits"] = format_amount(topup.credits)
        return Decision(saved, result)

    def _proceed(
        self,
        ledger: LedgerApplication,
        wallet: Wallet,
        topup: TopupRequest,
        saved: list[Aggregate],
    ) -> TopupRequested:
        """Hold the request for review, or leave it pending (invoice), or invoice it now with
        its payment order (card)."""
        rules = self._review(ledger, wallet, saved)
        if rules:
            topup.flag(rules=rules, payment_method=self.payment_method, actor=RISK_ACTOR)
            held: TopupRequested = {"topup_id": str(topup.id), "status": "needs_review"}
            return held | {"review_rules": rules}
        if self.payment_method == "invoice":
            return {"topup_id": str(topup.id), "status": "pending"}
        key = f"{self.name}:{self.company_id}:{self.idempotency_key}"
        return invoice_by_card(ledger, topup, self.actor, key, saved)

    def _review(
        self, ledger: LedgerApplication, wallet: Wallet, saved: list[Aggregate]
    ) -> list[str]:
        """The risk rules this request breaks (and its count, saved with it, when counted)."""
        rules, now = ledger.risk_rules, datetime.now(UTC)
        recent = 0
        if rules.counts_requests:
            velocity = ledger.topup_velocity(self.company_id)
            recent = velocity.count(now)
            saved.append(velocity)
        if not self.risk_review:
            return []
        return rules.fired(
            amount=self.amount,
            currency=self.currency,
            recent_requests=recent,
            company_since=wallet.created_on,
            now=now,
        )


def invoice_by_card(
    ledger: LedgerApplication, topup: TopupRequest, actor: str, key: str, saved: list[Aggregate]
) -> TopupRequested:
    """Invoice ``topup`` now and open its payment order (``saved`` gets what to save)."""
    claim = issue_invoice(ledger, topup, actor)
    order = open_payment_order(ledger, topup, actor, request_key=key)
    saved.extend([claim, order])
    return {
        "topup_id": str(topup.id),
        "status": "invoiced",
        "invoice_number": topup.invoice_number,
        "payment_order": order_state(order),
    }


@dataclass(frozen=True, kw_only=True)
class TopupStep(Command[R]):
    """A step of an existing top-up: scoped by the company the top-up belongs to."""

    topup_id: UUID

    def scope(self, ledger: LedgerApplication) -> str:
        return ledger.get_topup(self.topup_id).company_id


@dataclass(frozen=True, kw_only=True)
class TopupCommand(TopupStep[TopupChanged]):
    """A step that answers with the top-up's new state."""


@dataclass(frozen=True, kw_only=True)
class ApproveTopup(TopupCommand):
    """Approve and issue the invoice ``TOP-{yyyyMM}-{company}-{suffix}``."""

    name: ClassVar[str] = "approve_topup"

    def decide(self, ledger: LedgerApplication) -> Decision[TopupChanged]:
        topup = ledger.get_topup(self.topup_id)
        claim = issue_invoice(ledger, topup, self.actor)
        return Decision([topup, claim], topup_result(topup))


def issue_invoice(ledger: LedgerApplication, topup: TopupRequest, actor: str) -> InvoiceNumberClaim:
    """Approve ``topup`` with a new invoice number (and the claim that keeps it unique) and its
    lines: the wallet's tax (else the service's) and the platform fee on the amount."""
    number = new_invoice_number(topup.company_id)
    tax_percent = ledger.get_wallet_by_id(topup.wallet_id).tax_percent
    lines = invoice_lines(
        topup.amount, topup.currency,
        tax_percent=ledger.topup_tax_percent if tax_percent is None else tax_percent,
        fee_percent=ledger.topup_fee_percent,
    )  # fmt: skip
    topup.approve(invoice_number=number, actor=actor, lines=lines)
    return InvoiceNumberClaim(invoice_number=number, topup_id=topup.id)


@dataclass(frozen=True, kw_only=True)
class ReleaseTopup(TopupStep[TopupRequested]):
    """needs_review → pending; a card request is invoiced at once, with its payment order."""

    name: ClassVar[str] = "release_topup"

    note: str = ""

    def decide(self, ledger: LedgerApplication) -> Decision[TopupRequested]:
        topup = ledger.get_topup(self.topup_id)
        topup.release(note=self.note, actor=self.actor)
        saved: list[Aggregate] = [topup]
        company: TopupRequested = {"topup_id": str(topup.id), "status": "pending"}
        company["company_id"] = topup.company_id
        if topup.payment_method != "card":
            return Decision(saved, company)
        key = f"{self.name}:{self.topup_id}:{self.idempotency_key}"
        invoiced = invoice_by_card(ledger, topup, self.actor, key, saved)
        return Decision(saved, invoiced | {"company_id": topup.company_id})


@dataclass(frozen=True, kw_only=True)
class RejectTopup(TopupCommand):
    name: ClassVar[str] = "reject_topup"

    reason: str

    def decide(self, ledger: LedgerApplication) -> Decision[TopupChanged]:
        topup = ledger.get_topup(self.topup_id)
        topup.reject(reason=self.reason, actor=self.actor)
        return Decision([topup], topup_result(topup))


@dataclass(frozen=True, kw_only=True)
class CancelTopup(TopupCommand):
    """pending | invoiced → cancelled. ``tenant_company_id`` is set when a tenant (not an
    operator) cancels: the request must be that company's (else not found) and still pending
    (an invoice, once issued, is the operators' to cancel)."""

    name: ClassVar[str] = "cancel_topup"
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"tenant_company_id"})

    reason: str = ""
    tenant_company_id: str | None = None

    def decide(self, ledger: LedgerApplication) -> Decision[TopupChanged]:
        topup = ledger.get_topup(self.topup_id)
        if self.tenant_company_id is not None:
            if topup.company_id != self.tenant_company_id:
                raise TopupNotFound(f"no top-up request {self.topup_id}")
            if topup.status is TopupStatus.INVOICED:
                raise NotPermitted(
                    f"top-up {self.topup_id} is invoiced: only an operator can cancel it now"
                )
        topup.cancel(reason=self.reason, actor=self.actor)
        return Decision([topup], topup_result(topup))


@dataclass(frozen=True, kw_only=True)
class MarkTopupPaid(TopupCommand):
    """Record payment and credit the wallet's prepaid bucket in one transaction."""

    name: ClassVar[str] = "mark_topup_paid"

    payment_reference: str

    def decide(self, ledger: LedgerApplication) -> Decision[TopupChanged]:
        topup = ledger.get_topup(self.topup_id)
        wallet = pay_topup(
            ledger, topup, payment_reference=self.payment_reference, actor=self.actor
        )
        return Decision([topup, wallet], topup_result(topup))


@dataclass(frozen=True, kw_only=True)
class CreatePaymentOrder(TopupStep[PaymentOrderState]):
    """Another card payment order for an invoiced top-up (e.g. after a declined card or an
    expired checkout)."""

    name: ClassVar[str] = "create_payment_order"

    def decide(self, ledger: LedgerApplication) -> Decision[PaymentOrderState]:
        key = f"{self.name}:{self.topup_id}:{self.idempotency_key}"
        order = open_payment_order(ledger, ledger.get_topup(self.topup_id), self.actor,
                                   request_key=key)  # fmt: skip
        return Decision([order], order_state(order))


def request_auto_topup(
    ledger: LedgerApplication,
    *,
    wallet_id: UUID,
    trigger_version: int,
    auto_approve: bool,
    amount: Decimal,
) -> TopupRequested | TopupChanged:
    """The top-up request of one ``AutoTopupTriggered`` event, exactly once: its
    idempotency keys are derived from the triggering event."""
    wallet = ledger.get_wallet_by_id(wallet_id)
    key = f"auto-topup:{wallet_id}:{trigger_version}"
    requested = ledger.handle(
        RequestTopup(
            company_id=wallet.company_id,
            amount=parse_amount(format_amount(amount)),
            currency=wallet.currency,
            note=f"auto top-up (wallet version {trigger_version})",
            pool_sender_id=wallet.pool_sender_id,
            actor=AUTO_TOPUP_ACTOR,
            idempotency_key=key,
            risk_review=False,
        )
    )
    if not auto_approve:
        return requested
    return ledger.handle(
        ApproveTopup(
            topup_id=UUID(requested["topup_id"]),
            actor=AUTO_TOPUP_ACTOR,
            idempotency_key=f"{key}:approve",
        )
    )
