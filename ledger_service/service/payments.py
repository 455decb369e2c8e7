"""Card top-ups: payment orders opened with a provider, and the provider's events applied to them
exactly once.

A card top-up is invoiced at once and gets a ``PaymentOrder``; the provider's checkout collects
the money and reports back with a signed webhook (verified by the API, see
``api/payment_webhooks.py``), which becomes an ``ApplyPaymentEvent`` command keyed by the
provider's event id: a redelivered webhook is answered from the command record and changes
nothing. A succeeded order pays its top-up and credits the wallet in the same save. A payment
that does not match the order (amount, currency) or arrives for a top-up that is no longer
waiting for it moves the order to ``needs_review`` and credits nothing. A payment reported for
an order that is already final (expired, flagged, paid by another event) changes nothing and is
logged as an error (``payment_for_closed_order``) for an operator to refund or settle.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar, Literal, NamedTuple, NotRequired, Protocol, TypedDict
from uuid import NAMESPACE_URL, UUID, uuid5

import structlog

from ledger_service.domain import accounts
from ledger_service.domain.errors import InvalidTransition, NotPermitted
from ledger_service.domain.grants import PRIORITY_DEFAULT, grant_id
from ledger_service.domain.money import format_amount, from_minor_units
from ledger_service.domain.payment_order import PaymentOrder
from ledger_service.domain.topup import TopupRequest, TopupStatus
from ledger_service.domain.wallet import CreditBucket, CreditKind, Wallet
from ledger_service.service.runner import Command, Decision

if TYPE_CHECKING:
    from eventsourcing.domain import Aggregate

    from ledger_service.service.ledger import LedgerApplication

log = structlog.get_logger(__name__)

ORDER_METADATA_KEY = "ledger_payment_order_id"
"""Where a provider's payment intent carries the ledger's order id (set at checkout)."""
WEBHOOK_ACTOR = "-webhook"
"""How the actor of what a provider's webhook records ends (``stripe-webhook``)."""
PaymentOrderStatusText = Literal["created", "succeeded", "failed", "expired", "needs_review"]
PaymentEventKind = Literal["succeeded", "failed", "expired"]
Outcome = Literal["applied", "ignored"]


class Checkout(NamedTuple):
    url: str
    reference: str


class PaymentProvider(Protocol):
    """Opens the checkout where a payer pays an order (no network call for the mock)."""

    @property
    def name(self) -> str: ...

    def open_checkout(self, order: PaymentOrder) -> Checkout: ...


@dataclass(frozen=True)
class MockPaymentProvider:
    """Development and tests: the checkout is a page of this service whose buttons send the
    service a webhook signed as Stripe signs them (``api/routes/payments.py``)."""

    public_url: str
    name: str = "mock"

    def open_checkout(self, order: PaymentOrder) -> Checkout:
        return Checkout(
            f"{self.public_url}/v1/payments/mock/checkout/{order.id}", f"mock_{order.id.hex}"
        )


class PaymentOrderState(TypedDict):
    payment_order_id: str
    topup_id: str
    company_id: str
    provider: str
    status: PaymentOrderStatusText
    amount_total: str
    currency: str
    checkout_url: str | None
    position: NotRequired[int | None]


def order_state(order: PaymentOrder) -> PaymentOrderState:
    return {
        "payment_order_id": str(order.id),
        "topup_id": str(order.topup_id),
        "company_id": order.company_id,
        "provider": order.provider,
        "status": order.status.value,
        "amount_total": format_amount(order.amount_total),
        "currency": order.currency,
        "checkout_url": order.checkout_url,
    }


def open_payment_order(
    ledger: LedgerApplication, topup: TopupRequest, actor: str, *, request_key: str
) -> PaymentOrder:
    """A new order for an invoiced top-up, its checkout opened (saved by the caller).

    The order's id derives from ``request_key`` (the command and its idempotency key), so a
    retried decision (a version conflict) opens the provider's checkout with the same
    idempotency key and gets the same checkout back instead of a second one."""
    provider = ledger.payment_provider
    if provider is None:
        raise NotPermitted("card payments are not enabled (LEDGER_PAYMENTS_PROVIDER=none)")
    topup.check_status("pay by card", TopupStatus.INVOICED)
    order = PaymentOrder.create(
        order_id=uuid5(NAMESPACE_URL, f"ledger:payment-order:{request_key}"),
        topup_id=topup.id,
        company_id=topup.company_id,
        provider=provider.name,
        amount_total=topup.total,
        currency=topup.currency,
        actor=actor,
    )
    checkout = provider.open_checkout(order)
    order.open_checkout(checkout_url=checkout.url, provider_reference=checkout.reference)
    return order


def pay_topup(
    ledger: LedgerApplication, topup: TopupRequest, *, payment_reference: str, actor: str
) -> Wallet:
    """Record the top-up paid and credit its wallet's prepaid bucket (and its pack's bonus, as
    a grant); the caller saves both (with what paid it) in one transaction, so a top-up credits
    exactly once."""
    wallet = ledger.get_wallet_by_id(topup.wallet_id)
    topup.mark_paid(payment_reference=payment_reference, actor=actor)
    wallet.credit(
        topup.credited,
        bucket=CreditBucket.PREPAID,
        kind=CreditKind.TOPUP,
        counter_account=accounts.CASH_CLEARING,
        reference=f"topup:{topup.id}:{topup.invoice_number}",
        actor=actor,
    )
    if topup.pack_bonus:
        reference = f"pack:{topup.id}"
        wallet.issue_grant(
            grant_id=str(grant_id(wallet.id, reference)),
            amount=topup.pack_bonus,
            reason=f"bonus of pack {topup.pack}",
            reference=reference,
            actor=actor,
            priority=PRIORITY_DEFAULT,
        )
    return wallet


class PaymentApplied(TypedDict):
    payment_order_id: str
    outcome: Outcome
    status: PaymentOrderStatusText
    position: NotRequired[int | None]


@dataclass(frozen=True, kw_only=True)
class ApplyPaymentEvent(Command[PaymentApplied]):
    """One provider event about one order; ``idempotency_key`` is the provider's event id.

    ``amount_minor`` and ``currency`` are what the provider collected (``succeeded`` only).
    An event about an order that is already final is answered ``ignored``: providers send
    several events per payment, and a webhook must not fail for that."""

    name: ClassVar[str] = "apply_payment_event"

    provider: str
    payment_order_id: UUID
    kind: PaymentEventKind
    amount_minor: int | None = None
    currency: str | None = None
    reason: str = ""

    def scope(self, ledger: LedgerApplication) -> str:
        return f"#payments:{self.provider}"  # '#' is in no company id: no company shares it

    def decide(self, ledger: LedgerApplication) -> Decision[PaymentApplied]:
        order = ledger.get_payment_order(self.payment_order_id)
        if order.provider != self.provider:
            raise InvalidTransition(f"payment order {order.id} is not a {self.provider} order")
        event_id = self.idempotency_key
        if not order.is_open:
            # Applied already, by this event (a concurrent delivery of it won the race and its
            # command record was not there yet when this one looked) or by another one.
            if event_id in order.provider_event_ids:
                return Decision([], _applied(order, "applied"))
            if self.kind == "succeeded":  # money collected on a closed order: someone must act
                log.error(
                    "payment_for_closed_order", payment_order_id=str(order.id),
                    status=order.status.value, provider_event_id=event_id,
                    amount_minor=self.amount_minor, currency=self.currency,
                )  # fmt: skip
            return Decision([], _applied(order, "ignored"))
        changed: list[Aggregate] = [order]
        if self.kind == "failed":
            order.fail(provider_event_id=event_id, reason=self.reason, actor=self.actor)
        elif self.kind == "expired":
            order.expire(provider_event_id=event_id, actor=self.actor)
        else:
            changed += self._succeed(ledger, order, event_id)
        return Decision(changed, _applied(order, "applied"))

    def _succeed(
        self, ledger: LedgerApplication, order: PaymentOrder, event_id: str
    ) -> list[Aggregate]:
        """Pay the top-up and credit the wallet, or flag the order if the payment is not
        what was ordered; returns the other aggregates to save with the order."""
        currency = (self.currency or "").upper()
        paid = None if self.amount_minor is None else from_minor_units(self.amount_minor, currency)
        topup = ledger.get_topup(order.topup_id)
        problem = _mismatch(order, topup, paid, currency)
        if problem is not None:
            log.warning(
                "payment_needs_review", payment_order_id=str(order.id), reason=problem,
                provider_event_id=event_id,
            )  # fmt: skip
            order.flag_for_review(
                provider_event_id=event_id, amount_paid=paid or Decimal(0),
                currency_paid=currency, reason=problem, actor=self.actor,
            )  # fmt: skip
            return []
        order.succeed(provider_event_id=event_id, actor=self.actor)
        wallet = pay_topup(
            ledger, topup, payment_reference=f"{self.provider}:{event_id}", actor=self.actor
        )
        return [topup, wallet]


def _mismatch(
    order: PaymentOrder, topup: TopupRequest, paid: Decimal | None, currency: str
) -> str | None:
    if paid is None or currency != order.currency or paid != order.amount_total:
        amount = "no amount" if paid is None else f"{format_amount(paid)} {currency}"
        return f"paid {amount}, ordered {format_amount(order.amount_total)} {order.currency}"
    if topup.status is not TopupStatus.INVOICED:
        return f"paid, but the top-up is {topup.status.value}"
    return None


def _applied(order: PaymentOrder, outcome: Outcome) -> PaymentApplied:
    return {"payment_order_id": str(order.id), "outcome": outcome, "status": order.status.value}
