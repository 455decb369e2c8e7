"""Holds: upstream senders reserve a message's price before sending it (scope billing.usage, or
billing.manage). The usage event whose CloudEvents id is the hold's ``reference`` settles it;
``DELETE`` releases it; at ``expires_at`` it expires.

A hold is refused (409, nothing written) for the reasons pre-send authorization gives:
``SENDER_NOT_LINKED``, ``UNKNOWN_CATEGORY``, ``SPENDING_CAP_REACHED``,
``INSUFFICIENT_AVAILABLE_BALANCE``. The same request again returns the same hold; another
request for a reference whose hold is active is 409 ``HOLD_CONFLICT``.

Requests are committed in groups (``HoldBatcher``, ``LEDGER_HOLD_GROUP_WINDOW_MS``); the
reference is then the idempotency key and ``Idempotency-Key`` is not needed. With grouping off,
each request is its own command (keyed by ``Idempotency-Key``, or by the reference).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from ledger_service.api.routes.dependencies import (
    Caller,
    CompanyPath,
    MinPosition,
    OptionalIdempotencyKey,
    Sender,
    State,
    fresh,
    may_spend,
    see,
    wallet_not_found,
    write,
)
from ledger_service.domain.money import format_amount
from ledger_service.service.holds import HoldState, ReleaseHold
from schemas.api import HoldOut
from schemas.requests import HoldIn

router = APIRouter()
HOLDS_LISTED_MAX = 1000


@router.post("/wallets/{company_id}/holds", status_code=201, tags=["sender"])
async def place_hold(
    company_id: CompanyPath,
    body: HoldIn,
    state: State,
    caller: Sender,
    idempotency_key: OptionalIdempotencyKey = None,
) -> HoldOut:
    """Reserve the rate-card price of ``units`` of ``category`` until ``ttl_s`` from now."""
    may_spend(caller, company_id)
    key = idempotency_key or f"hold:{body.reference}"
    command = body.to_command(company_id, actor=caller.subject, idempotency_key=key)
    if state.holds is not None:
        held: HoldState = await asyncio.wrap_future(state.holds.submit(command))
    else:
        held = await write(state, command)
    return HoldOut.model_validate(held)


@router.get("/wallets/{company_id}/holds", tags=["tenant"])
async def list_holds(
    company_id: CompanyPath,
    state: State,
    caller: Caller,
    min_position: MinPosition = None,
    limit: Annotated[int, Query(ge=1, le=HOLDS_LISTED_MAX)] = 100,
) -> list[HoldOut]:
    """The active holds, soonest to expire first (scope billing.view, own company)."""
    if not caller.can_spend(company_id):
        see(caller, company_id)
    reads = await fresh(state, min_position)
    wallet = await reads.wallet(company_id, None)
    if wallet is None:
        raise wallet_not_found(company_id)
    return [_listed(row, wallet["currency"]) for row in await reads.holds(company_id, limit)]


def _listed(row: Any, currency: str) -> HoldOut:
    return HoldOut(
        hold_id=row["hold_id"],
        company_id=row["company_id"],
        status="active",
        reference=row["reference"],
        source=row["source"],
        waba_id=row["sender_id"],
        category=row["category"],
        units=row["units"],
        amount=format_amount(row["amount"]),
        currency=currency,
        expires_at=row["expires_at"],
    )


@router.delete("/wallets/{company_id}/holds/{hold_id}", tags=["sender"])
async def release_hold(
    company_id: CompanyPath,
    hold_id: UUID,
    state: State,
    caller: Sender,
    idempotency_key: OptionalIdempotencyKey = None,
) -> HoldOut:
    """Release an active hold now (its message will not be sent)."""
    may_spend(caller, company_id)
    command = ReleaseHold(
        company_id=company_id,
        hold_id=hold_id,
        actor=caller.subject,
        idempotency_key=idempotency_key or f"release:{hold_id}",
    )
    released: HoldState = await write(state, command)
    return HoldOut.model_validate(released)
