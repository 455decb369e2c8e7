"""The part of Stripe's webhook events the ledger reads (the payload of ``Stripe-Signature``-
signed ``POST /v1/payments/webhooks/{provider}``; the mock provider sends the same shapes).

Only what is read is declared and everything else is ignored, so Stripe adding fields never
breaks a webhook. Stripe documents these objects at https://docs.stripe.com/api/events,
``checkout.session`` and ``payment_intent``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SESSION_COMPLETED = "checkout.session.completed"
SESSION_ASYNC_PAYMENT_SUCCEEDED = "checkout.session.async_payment_succeeded"
SESSION_EXPIRED = "checkout.session.expired"
PAYMENT_FAILED = "payment_intent.payment_failed"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CheckoutSession(_Lenient):
    id: str = ""
    client_reference_id: str | None = None
    """The ledger's payment order id."""
    amount_total: int | None = None
    """Minor units of ``currency`` (cents for USD)."""
    currency: str | None = None
    """Lower-case ISO 4217 code, as Stripe sends it."""
    payment_status: str | None = None
    """``paid`` when the money is collected; ``unpaid`` while an async method is pending."""


class PaymentError(_Lenient):
    code: str | None = None
    message: str | None = None


class PaymentIntent(_Lenient):
    id: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)
    last_payment_error: PaymentError | None = None


class EventData(_Lenient):
    object: dict[str, Any]


class StripeEvent(_Lenient):
    id: str = Field(min_length=1, max_length=200)
    type: str
    data: EventData
