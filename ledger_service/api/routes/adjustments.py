"""Operator adjustments of a wallet under the four-eyes rule (scope billing.manage).

Up to ``LEDGER_ADJUSTMENT_APPROVAL_THRESHOLD`` an adjustment applies at once; above it, it is
``pending_approval`` until an operator other than the requester approves (the money moves then)
or rejects it. Reading one adjustment loads it from the event store (it is not projected)."""

from __future__ import annotations

import asyncio
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
from ledger_service.domain.errors import AdjustmentNotFound
from ledger_service.service.adjustments import (
    AdjustmentState,
    ApproveAdjustment,
    adjustment_state,
)
from schemas.api import AdjustmentOut
from schemas.requests import AdjustmentIn, AdjustmentRejectIn

router = APIRouter()


def _out(state: AdjustmentState) -> AdjustmentOut:
    return AdjustmentOut(
        id=UUID(state["adjustment_id"]),
        company_id=state["company_id"],
        status=state["status"],
        direction=state["direction"],
        bucket=state["bucket"],
        amount=state["amount"],
        reason=state["reason"],
        requested_by=state["requested_by"],
        approved_by=state["approved_by"],
        rejected_by=state["rejected_by"],
        rejection_reason=state["rejection_reason"],
        position=state.get("position"),
    )


@router.post("/wallets/{company_id}/adjustments", status_code=201, tags=["operator"])
async def request_adjustment(
    company_id: CompanyPath,
    body: AdjustmentIn,
    state: State,
    caller: Operator,
    idempotency_key: IdempotencyKey,
) -> AdjustmentOut:
    """Credit or debit ``prepaid`` or ``postpaid_used`` with a reason: ``applied`` at once up
    to the approval threshold, else ``pending_approval``."""
    idempotency = key(idempotency_key)
    command = body.to_command(company_id, actor=caller.subject, idempotency_key=idempotency)
    return _out(await write(state, command))


@router.get("/wallets/{company_id}/adjustments/{adjustment_id}", tags=["operator"])
async def get_adjustment(
    company_id: CompanyPath, adjustment_id: UUID, state: State, caller: Operator
) -> AdjustmentOut:
    adjustment = await asyncio.to_thread(state.ledger.get_adjustment, adjustment_id)
    if adjustment.company_id != company_id:
        raise AdjustmentNotFound(f"no adjustment {adjustment_id} of {company_id}")
    return _out(adjustment_state(adjustment))


@router.post("/wallets/{company_id}/adjustments/{adjustment_id}/approve", tags=["operator"])
async def approve_adjustment(
    company_id: CompanyPath,
    adjustment_id: UUID,
    state: State,
    caller: Operator,
    idempotency_key: IdempotencyKey,
) -> AdjustmentOut:
    """A second operator approves: applied, the wallet moved in the same transaction.
    The requester approving their own adjustment is 403 ``NOT_PERMITTED``."""
    command = ApproveAdjustment(
        company_id=company_id,
        adjustment_id=adjustment_id,
        actor=caller.subject,
        idempotency_key=key(idempotency_key),
    )
    return _out(await write(state, command))


@router.post("/wallets/{company_id}/adjustments/{adjustment_id}/reject", tags=["operator"])
async def reject_adjustment(
    company_id: CompanyPath,
    adjustment_id: UUID,
    body: AdjustmentRejectIn,
    state: State,
    caller: Operator,
    idempotency_key: IdempotencyKey,
) -> AdjustmentOut:
    """A second operator rejects, with a reason; nothing moves."""
    idempotency = key(idempotency_key)
    command = body.to_command(
        company_id, adjustment_id, actor=caller.subject, idempotency_key=idempotency
    )
    return _out(await write(state, command))
