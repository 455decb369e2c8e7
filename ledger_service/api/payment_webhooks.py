"""Payment provider webhooks: verified with Stripe's own package, then turned into the one
command the ledger runs for them (``ApplyPaymentEvent``, keyed by the provider's event id).

A bad, missing or foreign signature is ``401 WEBHOOK_SIGNATURE_INVALID`` and a signed timestamp
older than ``TOLERANCE_S`` (a replayed request) ``401 WEBHOOK_TIMESTAMP_TOO_OLD``: the sender is
not authenticated, as a bad bearer token is 401 elsewhere. A signed body that is not a Stripe
event is ``400 WEBHOOK_MALFORMED``. Nothing is written for any of
them. Event types the ledger does not act on are answered ``ignored`` (200), so the provider
stops resending them.
"""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

import stripe
import structlog
from pydantic import ValidationError

from ledger_service.api.errors import ApiError
from ledger_service.service.payments import (
    ORDER_METADATA_KEY,
    WEBHOOK_ACTOR,
    ApplyPaymentEvent,
    PaymentEventKind,
)
from schemas.stripe_events import (
    PAYMENT_FAILED,
    SESSION_ASYNC_PAYMENT_SUCCEEDED,
    SESSION_COMPLETED,
    SESSION_EXPIRED,
    CheckoutSession,
    PaymentIntent,
    StripeEvent,
)

log = structlog.get_logger(__name__)
T = TypeVar("T", CheckoutSession, PaymentIntent)

TOLERANCE_S = 300
"""How old a signed timestamp may be (Stripe's default): a captured webhook replayed later
is refused even though its signature is genuine."""
PAYLOAD_LENGTH_MAX = 256 * 1024


def verified_event(payload: bytes, signature: str | None, secret: str) -> StripeEvent:
    """The event, if ``signature`` is a valid ``Stripe-Signature`` of ``payload`` by ``secret``
    made within ``TOLERANCE_S``."""
    if len(payload) > PAYLOAD_LENGTH_MAX:
        raise ApiError(413, "WEBHOOK_TOO_LARGE", f"webhook bodies are at most {PAYLOAD_LENGTH_MAX}")
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, TOLERANCE_S)
    except UnicodeDecodeError:
        raise ApiError(400, "WEBHOOK_MALFORMED", "the body is not UTF-8") from None
    except stripe.SignatureVerificationError as exc:
        # The library checks the signature before the timestamp: "tolerance" means a genuine
        # signature, made too long ago.
        too_old = "tolerance" in str(exc)
        code = "WEBHOOK_TIMESTAMP_TOO_OLD" if too_old else "WEBHOOK_SIGNATURE_INVALID"
        log.warning("payment_webhook_refused", code=code)
        raise ApiError(401, code, str(exc).split(".")[0]) from None
    try:
        return StripeEvent.model_validate_json(payload)
    except ValidationError as exc:
        raise ApiError(400, "WEBHOOK_MALFORMED", f"not a Stripe event: {exc.errors()[0]}") from None


def payment_command(event: StripeEvent, provider: str) -> ApplyPaymentEvent | None:
    """The command for an event the ledger acts on; None for any other event."""
    if event.type in (SESSION_COMPLETED, SESSION_ASYNC_PAYMENT_SUCCEEDED, SESSION_EXPIRED):
        session = _parsed(CheckoutSession, event)
        if event.type == SESSION_EXPIRED:
            return _command(event, provider, session.client_reference_id, "expired")
        if session.payment_status != "paid":  # an async method still pending: wait for it
            return None
        return _command(
            event, provider, session.client_reference_id, "succeeded",
            amount_minor=session.amount_total, currency=session.currency,
        )  # fmt: skip
    if event.type == PAYMENT_FAILED:
        intent = _parsed(PaymentIntent, event)
        error = intent.last_payment_error
        reason = (error.message or error.code or "") if error else ""
        order = intent.metadata.get(ORDER_METADATA_KEY)
        if order is None:  # a payment of the account that no ledger checkout started
            return None
        return _command(event, provider, order, "failed", reason=reason or "payment failed")
    return None


def _parsed(kind: type[T], event: StripeEvent) -> T:
    try:
        return kind.model_validate(event.data.object)
    except ValidationError as exc:
        raise ApiError(400, "WEBHOOK_MALFORMED", f"{event.type}: {exc.errors()[0]}") from None


def _command(
    event: StripeEvent,
    provider: str,
    order_id: str | None,
    kind: PaymentEventKind,
    *,
    amount_minor: int | None = None,
    currency: str | None = None,
    reason: str = "",
) -> ApplyPaymentEvent:
    try:
        order = UUID(order_id or "")
    except ValueError:
        raise ApiError(
            400, "WEBHOOK_MALFORMED", f"{event.type} names no ledger payment order"
        ) from None
    return ApplyPaymentEvent(
        provider=provider,
        payment_order_id=order,
        kind=kind,
        actor=f"{provider}{WEBHOOK_ACTOR}",
        idempotency_key=event.id,
        amount_minor=amount_minor,
        currency=currency,
        reason=reason,
    )
