"""Stripe as the payment provider: each payment order opens a Stripe Checkout Session.

The session carries the order id where Stripe's events will bring it back: in
``client_reference_id`` (``checkout.session.*`` events) and in the payment intent's metadata
(``payment_intent.payment_failed``). It charges the order's total in minor units. Stripe's
answer is the checkout URL the payer opens and the session id (the order's provider
reference). Processing the webhooks needs no call to Stripe; only opening a checkout does, and
if Stripe cannot be reached the request fails with 503 ``PAYMENT_PROVIDER_UNAVAILABLE`` and
nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import stripe
import structlog

from ledger_service.domain.errors import InvalidArgument, PaymentProviderUnavailable
from ledger_service.domain.money import to_minor_units
from ledger_service.domain.payment_order import PaymentOrder
from ledger_service.service.payments import ORDER_METADATA_KEY, Checkout

log = structlog.get_logger(__name__)
REQUEST_TIMEOUT_S = 10
UNSUPPORTED_CURRENCIES = frozenset({"ISK", "HUF", "TWD", "UGX", "BHD", "JOD", "KWD", "OMR", "TND"})
"""Currencies whose amounts Stripe does not count in plain ISO 4217 minor units (ISK, HUF, TWD
and UGX in hundredths although ISO has no or other decimals; the three-decimal ones only in
multiples of ten): an order in one would be charged a different amount than it credits, so
the Stripe provider refuses them until it converts them Stripe's way."""


@dataclass(frozen=True)
class StripeCheckoutProvider:
    api_key: str
    success_url: str
    cancel_url: str
    api_base: str | None = None
    """Stripe's API address; another one only for a proxy or a test double."""
    name: str = "stripe"
    _client: stripe.StripeClient = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        client = stripe.StripeClient(
            self.api_key,
            base_addresses={"api": self.api_base} if self.api_base else None,
            max_network_retries=2,
            http_client=stripe.RequestsClient(timeout=REQUEST_TIMEOUT_S),
        )
        object.__setattr__(self, "_client", client)

    def open_checkout(self, order: PaymentOrder) -> Checkout:
        if order.currency in UNSUPPORTED_CURRENCIES:
            raise InvalidArgument(f"card payments in {order.currency} are not supported yet")
        try:
            session = self._client.v1.checkout.sessions.create(
                params=self.session_params(order),  # type: ignore[arg-type]
                # A retried request (a network error) gets the same session back.
                options={"idempotency_key": f"ledger-payment-order-{order.id}"},
            )
        except stripe.InvalidRequestError as exc:  # a retry would be refused again
            log.error("stripe_checkout_refused", payment_order_id=str(order.id), error=str(exc))
            raise InvalidArgument(f"Stripe refused the checkout: {exc.user_message}") from None
        except stripe.StripeError as exc:
            log.warning("stripe_checkout_failed", payment_order_id=str(order.id), error=str(exc))
            raise PaymentProviderUnavailable(f"Stripe did not open a checkout: {exc}") from None
        if not session.url:
            raise PaymentProviderUnavailable("Stripe answered a checkout session without a URL")
        return Checkout(session.url, session.id)

    def session_params(self, order: PaymentOrder) -> dict[str, Any]:
        reference = {ORDER_METADATA_KEY: str(order.id), "topup_id": str(order.topup_id)}
        return {
            "mode": "payment",
            "client_reference_id": str(order.id),
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": order.currency.lower(),
                        "unit_amount": to_minor_units(order.amount_total, order.currency),
                        "product_data": {"name": f"Prepaid credit ({order.company_id})"},
                    },
                }
            ],
            "metadata": reference,
            "payment_intent_data": {"metadata": reference},
            "success_url": self.success_url,
            "cancel_url": self.cancel_url,
        }
