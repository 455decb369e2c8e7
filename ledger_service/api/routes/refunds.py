"""Refunds of billed usage events (scope billing.manage): the charge given back in full, once.

A second refund of the same usage event is 409 ``USAGE_ALREADY_REFUNDED``; a usage event this
company was never billed for is 404 ``USAGE_NOT_FOUND``."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from ledger_service.api.routes.dependencies import (
    CompanyPath,
    IdempotencyKey,
    Operator,
    State,
    key,
    write,
)
from ledger_service.service.refunds import RefundState
from schemas.api import RefundOut
from schemas.requests import RefundIn

router = APIRouter()


def _out(state: RefundState) -> RefundOut:
    return RefundOut(
        id=UUID(state["refund_id"]),
        company_id=state["company_id"],
        usage={"source": state["usage_source"], "id": state["usage_id"]},
        amount=state["amount"],
        returned_to=state["returned_to"],
        reason=state["reason"],
        refunded_by=state["refunded_by"],
        position=state.get("position"),
    )


@router.post("/wallets/{company_id}/refunds", status_code=201, tags=["operator"])
async def refund_usage(
    company_id: CompanyPath,
    body: RefundIn,
    state: State,
    caller: Operator,
    idempotency_key: IdempotencyKey,
) -> RefundOut:
    """Give back what one usage event (CloudEvents ``source`` and ``id``) was charged, into the
    buckets it was drawn from in reverse order (debt first, then prepaid, then included)."""
    idempotency = key(idempotency_key)
    command = body.to_command(company_id, actor=caller.subject, idempotency_key=idempotency)
    return _out(await write(state, command))
