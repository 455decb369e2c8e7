"""Transfers of prepaid money between companies (operators)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from ledger_service.api.routes.dependencies import IdempotencyKey, Operator, State, key, write
from schemas.api import TransferOut
from schemas.requests import TransferIn

router = APIRouter()


@router.post("/transfers", status_code=201, tags=["operator"])
async def transfer(
    body: TransferIn, state: State, caller: Operator, idempotency_key: IdempotencyKey = None
) -> TransferOut:
    """Move prepaid money between companies, less commission (scope billing.manage)."""
    command = body.to_command(actor=caller.subject, idempotency_key=key(idempotency_key))
    result = await write(state, command)
    return TransferOut(
        transfer_id=UUID(result["transfer_id"]),
        from_company_id=body.from_company_id,
        to_company_id=body.to_company_id,
        amount=result["amount"],
        commission=result["commission"],
        net_amount=result["net_amount"],
        position=result["position"],
    )
