"""Card payments: payment orders of invoiced top-ups, the providers' signed webhooks, and the
mock provider's checkout page (development and tests).

``router`` holds the routes callers reach with a token. ``public_router`` holds what the
payment provider and the payer's browser reach without one: the webhook is authenticated by
its signature (``api/payment_webhooks.py``), and the mock checkout exists only while
``LEDGER_PAYMENTS_PROVIDER=mock`` (refused in production). The mock's buttons sign a Stripe-
shaped event with the mock secret and hand it to the same code the webhook runs.
"""

from __future__ import annotations

import asyncio
import html
import json
import uuid
from typing import Annotated, Any, Literal
from uuid import UUID

import stripe
from fastapi import APIRouter, Header, Request
from fastapi.responses import HTMLResponse

from ledger_service import metrics
from ledger_service.api.auth import Principal, require_view
from ledger_service.api.errors import ApiError
from ledger_service.api.payment_webhooks import payment_command, verified_event
from ledger_service.api.routes.dependencies import (
    ApiState,
    Caller,
    IdempotencyKey,
    MinPosition,
    State,
    fresh,
    key,
    write,
)
from ledger_service.domain.errors import LedgerError, PaymentOrderNotFound, TopupNotFound
from ledger_service.domain.money import format_amount, to_minor_units
from ledger_service.domain.payment_order import PaymentOrder
from ledger_service.service.payments import ORDER_METADATA_KEY, PaymentOrderState
from ledger_service.service.topups import CreatePaymentOrder
from schemas.api import PaymentOrderOut, WebhookOut
from schemas.stripe_events import (
    PAYMENT_FAILED,
    SESSION_COMPLETED,
)

router = APIRouter()
public_router = APIRouter()
MOCK = "mock"


# -- payment orders (token) -----------------------------------------------------------------


@router.post("/topup-requests/{topup_id}/payment-orders", status_code=201, tags=["tenant"])
async def create_payment_order(
    topup_id: UUID, state: State, caller: Caller, idempotency_key: IdempotencyKey
) -> PaymentOrderOut:
    """A new card payment order for an invoiced top-up, e.g. after a declined card or an
    expired checkout (scope billing.view, own company; or billing.manage)."""
    topup = await asyncio.to_thread(state.ledger.get_topup, topup_id)
    _check_sees(caller, topup.company_id, TopupNotFound(f"no top-up request {topup_id}"))
    command = CreatePaymentOrder(
        topup_id=topup_id, actor=caller.subject, idempotency_key=key(idempotency_key)
    )
    created: PaymentOrderState = await write(state, command)
    return PaymentOrderOut.of(created)


@router.get("/payment-orders/{order_id}", tags=["tenant", "operator"])
async def get_payment_order(
    order_id: UUID, state: State, caller: Caller, min_position: MinPosition = None
) -> PaymentOrderOut:
    """One payment order (scope billing.view, own company; or billing.manage)."""
    row = await (await fresh(state, min_position)).payment_order(order_id)
    missing = PaymentOrderNotFound(f"no payment order {order_id}")
    if row is None:
        raise missing
    _check_sees(caller, row["company_id"], missing)
    return _order_out(row)


@router.get("/topup-requests/{topup_id}/payment-orders", tags=["tenant", "operator"])
async def list_payment_orders(
    topup_id: UUID, state: State, caller: Caller, min_position: MinPosition = None
) -> list[PaymentOrderOut]:
    """A top-up's payment orders, oldest first (scope billing.view, own company; or
    billing.manage)."""
    reads = await fresh(state, min_position)
    topup = await reads.topup(topup_id)
    missing = TopupNotFound(f"no top-up request {topup_id}")
    if topup is None:
        raise missing
    _check_sees(caller, topup["company_id"], missing)
    return [_order_out(row) for row in await reads.payment_orders_of(topup_id)]


def _order_out(row: Any) -> PaymentOrderOut:
    return PaymentOrderOut.of({**row, "amount_total": format_amount(row["amount_total"])})


def _check_sees(caller: Principal, company_id: str, not_found: Exception) -> None:
    """Another company's order or top-up looks like none at all."""
    require_view(caller)
    if not caller.can_see(company_id):
        raise not_found


# -- webhooks (signed) --------------------------------------------------------------------


@public_router.post("/payments/webhooks/{provider}", tags=["payments"])
async def payment_webhook(
    provider: Literal["stripe", "mock"],
    request: Request,
    state: State,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> WebhookOut:
    """A payment provider's event, signed as Stripe signs them (``Stripe-Signature``, 300 s
    tolerance). ``checkout.session.completed`` pays the order's top-up and credits the wallet
    in one transaction; ``checkout.session.expired`` and ``payment_intent.payment_failed``
    close or fail the order. Each provider event id is applied once: a redelivery answers
    the same and changes nothing. A payment that does not match its order is flagged
    ``needs_review`` and credits nothing."""
    return await receive_webhook(state, provider, await request.body(), stripe_signature)


async def receive_webhook(
    state: ApiState, provider: str, payload: bytes, signature: str | None
) -> WebhookOut:
    secret = state.webhook_secrets.get(provider)
    if secret is None:
        raise ApiError(404, "WEBHOOK_NOT_CONFIGURED", f"no {provider} webhook on this service")
    try:
        answer = await _apply_webhook(state, provider, payload, signature, secret)
    except (ApiError, LedgerError):
        metrics.PAYMENT_WEBHOOKS.labels(provider, "refused").inc()
        raise
    outcome = "needs_review" if answer.status == "needs_review" else answer.outcome
    metrics.PAYMENT_WEBHOOKS.labels(provider, outcome).inc()
    return answer


async def _apply_webhook(
    state: ApiState, provider: str, payload: bytes, signature: str | None, secret: str
) -> WebhookOut:
    command = payment_command(verified_event(payload, signature, secret), provider)
    if command is None:
        return WebhookOut(outcome="ignored")
    applied = await write(state, command)
    return WebhookOut(
        outcome=applied["outcome"],
        payment_order_id=UUID(applied["payment_order_id"]),
        status=applied["status"],
    )


# -- the mock provider's checkout (development) -----------------------------------------------


# The page is HTML but its errors are the API's JSON ones, so the page is declared as an extra
# content type of 200 rather than as the route's response class (which would label every
# documented error text/html).
HTML_PAGE: dict[int | str, dict[str, Any]] = {
    200: {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}
}


@public_router.get(
    "/payments/mock/checkout/{order_id}", tags=["payments"], response_model=None,
    responses=HTML_PAGE,
)  # fmt: skip
async def mock_checkout(order_id: UUID, state: State) -> HTMLResponse:
    """The mock provider's checkout page: pay or decline the order (no real money)."""
    order = await _mock_order(state, order_id)
    amount = html.escape(f"{format_amount(order.amount_total)} {order.currency}")
    actions = ""
    if order.is_open:
        base = f"/v1/payments/mock/checkout/{order.id}"
        actions = (
            f'<form method="post" action="{base}/pay"><button>Pay {amount}</button></form>'
            f'<form method="post" action="{base}/decline"><button>Decline the card</button>'
            "</form>"
        )
    return HTMLResponse(
        "<!doctype html><title>Mock checkout</title><h1>Mock checkout</h1>"
        f"<p>Payment order {order.id}: <strong>{amount}</strong>, "
        f"status <strong id=status>{html.escape(order.status)}</strong></p>{actions}"
        "<p>Development only: no money moves.</p>"
    )


@public_router.post(
    "/payments/mock/checkout/{order_id}/{outcome}", tags=["payments"], response_model=None,
    responses=HTML_PAGE,
)  # fmt: skip
async def mock_checkout_outcome(
    order_id: UUID, outcome: Literal["pay", "decline"], state: State
) -> HTMLResponse:
    """What the mock checkout's buttons do: send this service the webhook Stripe would."""
    order = await _mock_order(state, order_id)
    payload = json.dumps(_mock_event(order, outcome)).encode()
    secret = state.webhook_secrets[MOCK]
    header = stripe.WebhookSignature.generate_signature_header(payload.decode(), secret)
    await receive_webhook(state, MOCK, payload, header)
    return await mock_checkout(order_id, state)


async def _mock_order(state: ApiState, order_id: UUID) -> PaymentOrder:
    if MOCK not in state.webhook_secrets:
        raise ApiError(404, "NOT_FOUND", "the mock payment provider is not enabled")
    order = await asyncio.to_thread(state.ledger.get_payment_order, order_id)
    if order.provider != MOCK:
        raise PaymentOrderNotFound(f"no mock payment order {order_id}")
    return order


def _mock_event(order: PaymentOrder, outcome: Literal["pay", "decline"]) -> dict[str, object]:
    """The event Stripe sends for that outcome (the fields the ledger reads, and ids)."""
    event_id = f"evt_mock_{uuid.uuid4().hex}"
    if outcome == "pay":
        session = {
            "id": order.provider_reference, "object": "checkout.session",
            "client_reference_id": str(order.id), "payment_status": "paid",
            "amount_total": to_minor_units(order.amount_total, order.currency),
            "currency": order.currency.lower(),
        }  # fmt: skip
        return {"id": event_id, "type": SESSION_COMPLETED, "data": {"object": session}}
    intent = {
        "id": f"pi_mock_{order.id.hex}", "object": "payment_intent",
        "metadata": {ORDER_METADATA_KEY: str(order.id)},
        "last_payment_error": {"code": "card_declined", "message": "The card was declined."},
    }  # fmt: skip
    return {"id": event_id, "type": PAYMENT_FAILED, "data": {"object": intent}}
