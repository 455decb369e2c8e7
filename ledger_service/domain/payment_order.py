"""The PaymentOrder aggregate: one attempt to collect a top-up's invoice through a payment
provider (card checkout). A succeeded order is the only way a card top-up becomes paid.

Lifecycle (the provider's checkout is opened right after creation, in the same save)::

    created --succeed--> succeeded
    created | failed --fail--> failed        (a declined card; the customer may try again)
    created | failed --succeed--> succeeded  (the retry in the same checkout went through)
    created | failed --expire--> expired     (the checkout closed unpaid)
    created | failed --flag--> needs_review  (paid, but not the amount or currency ordered)

``succeeded``, ``expired`` and ``needs_review`` are final. The application saves ``Succeeded``
in the same transaction as the top-up's ``Paid`` and the wallet's ``Credited``, so an order
credits at most once: a second success finds it final, and two racing ones collide on the
order's next version. Each transition names the provider event that caused it.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger_service.domain.errors import InvalidTransition
from ledger_service.domain.ids import check_key
from ledger_service.domain.money import canonical, parse_amount, to_minor_units


class PaymentOrderStatus(StrEnum):
    """Stored in the order's events by name (never rename one)."""

    CREATED = "created"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    NEEDS_REVIEW = "needs_review"


OPEN = frozenset({PaymentOrderStatus.CREATED, PaymentOrderStatus.FAILED})
"""States in which a provider event may still move the order."""


class PaymentOrder(Aggregate):
    class Created(Aggregate.Created):
        topup_id: UUID
        company_id: str
        provider: str
        amount_total: Decimal
        currency: str
        actor: str

    class CheckoutOpened(Aggregate.Event):
        """The provider's checkout for the order: where the payer goes, and the provider's
        reference of it (e.g. a Stripe Checkout Session id)."""

        checkout_url: str
        provider_reference: str

    class Succeeded(Aggregate.Event):
        provider_event_id: str
        actor: str

    class Failed(Aggregate.Event):
        provider_event_id: str
        reason: str
        actor: str

    class Expired(Aggregate.Event):
        provider_event_id: str
        actor: str

    class FlaggedForReview(Aggregate.Event):
        """Paid, but not what was ordered: nothing is credited until an operator decides."""

        provider_event_id: str
        amount_paid: Decimal
        currency_paid: str
        reason: str
        actor: str

    @classmethod
    def create(
        cls,
        *,
        order_id: UUID | None = None,
        topup_id: UUID,
        company_id: str,
        provider: str,
        amount_total: Decimal,
        currency: str,
        actor: str,
    ) -> PaymentOrder:
        check_key(company_id, "company_id")
        amount = parse_amount(amount_total, allow_zero=False)
        to_minor_units(amount, currency)  # a provider charges whole minor units only
        # The library's creation method, which takes the new aggregate's id (the constructor
        # makes a random one).
        return cls._create(
            cls.Created,
            id=order_id,
            topup_id=topup_id,
            company_id=company_id,
            provider=check_key(provider, "provider"),
            amount_total=canonical(amount),
            currency=currency,
            actor=actor,
        )

    @event(Created)
    def __init__(
        self,
        topup_id: UUID,
        company_id: str,
        provider: str,
        amount_total: Decimal,
        currency: str,
        actor: str,
    ) -> None:
        self.topup_id = topup_id
        self.company_id = company_id
        self.provider = provider
        self.amount_total = amount_total
        self.currency = currency
        self.checkout_url: str | None = None
        self.provider_reference: str | None = None
        self.status = PaymentOrderStatus.CREATED
        self.provider_event_ids: list[str] = []
        """The provider events that moved the order, in order (for the audit trail)."""
        self.failure_reason: str | None = None

    def open_checkout(self, *, checkout_url: str, provider_reference: str) -> None:
        self._check_open("open a checkout for")
        self._checkout_opened(checkout_url=checkout_url, provider_reference=provider_reference)

    @event(CheckoutOpened)
    def _checkout_opened(self, checkout_url: str, provider_reference: str) -> None:
        self.checkout_url = checkout_url
        self.provider_reference = provider_reference

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def _check_open(self, action: str) -> None:
        if not self.is_open:
            raise InvalidTransition(f"cannot {action} a payment order that is {self.status}")

    def succeed(self, *, provider_event_id: str, actor: str) -> None:
        self._check_open("complete")
        self._succeeded(provider_event_id=provider_event_id, actor=actor)

    @event(Succeeded)
    def _succeeded(self, provider_event_id: str, actor: str) -> None:
        self.status = PaymentOrderStatus.SUCCEEDED
        self.provider_event_ids.append(provider_event_id)

    def fail(self, *, provider_event_id: str, reason: str, actor: str) -> None:
        self._check_open("fail")
        self._failed(provider_event_id=provider_event_id, reason=reason[:500], actor=actor)

    @event(Failed)
    def _failed(self, provider_event_id: str, reason: str, actor: str) -> None:
        self.status = PaymentOrderStatus.FAILED
        self.failure_reason = reason
        self.provider_event_ids.append(provider_event_id)

    def expire(self, *, provider_event_id: str, actor: str) -> None:
        self._check_open("expire")
        self._expired(provider_event_id=provider_event_id, actor=actor)

    @event(Expired)
    def _expired(self, provider_event_id: str, actor: str) -> None:
        self.status = PaymentOrderStatus.EXPIRED
        self.provider_event_ids.append(provider_event_id)

    def flag_for_review(
        self,
        *,
        provider_event_id: str,
        amount_paid: Decimal,
        currency_paid: str,
        reason: str,
        actor: str,
    ) -> None:
        self._check_open("flag")
        self._flagged_for_review(
            provider_event_id=provider_event_id,
            amount_paid=canonical(amount_paid),
            currency_paid=currency_paid,
            reason=reason,
            actor=actor,
        )

    @event(FlaggedForReview)
    def _flagged_for_review(
        self,
        provider_event_id: str,
        amount_paid: Decimal,
        currency_paid: str,
        reason: str,
        actor: str,
    ) -> None:
        self.status = PaymentOrderStatus.NEEDS_REVIEW
        self.failure_reason = reason
        self.provider_event_ids.append(provider_event_id)
