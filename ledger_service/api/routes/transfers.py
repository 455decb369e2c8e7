"""Transfers of prepaid money between companies: an operator's (make one, list them) and a
tenant's from its own wallet (a gift, scope ``billing.transfer``)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from ledger_service.api.auth import require_transfer
from ledger_service.api.routes.dependencies import (
    Caller,
    CompanyPath,
    Cursor,
    IdempotencyKey,
    Limit,
    MinPosition,
    Operator,
    Since,
    State,
    Until,
    fresh,
    key,
    page,
    wallet_not_found,
    write,
)
from ledger_service.domain.money import format_amount
from projections.queries import EntryFilters
from schemas.api import KEY_PATTERN, TransferOut, TransferRecordOut, TransfersPage, TransferTotals
from schemas.requests import GiftIn, TransferIn

router = APIRouter()


@router.post("/transfers", status_code=201, tags=["operator"])
async def transfer(
    body: TransferIn, state: State, caller: Operator, idempotency_key: IdempotencyKey
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


@router.post("/wallets/{company_id}/transfers", status_code=201, tags=["tenant"])
async def send_transfer(
    company_id: CompanyPath,
    body: GiftIn,
    state: State,
    caller: Caller,
    idempotency_key: IdempotencyKey,
) -> TransferOut:
    """Send prepaid money from your company's wallet to another company's, with an optional
    gift type and message (scope billing.transfer, own company; operators for any): the
    service's commission is kept from what the receiver gets, and the sender's daily transfer
    limit applies (409 ``TRANSFER_LIMIT_REACHED``)."""
    require_transfer(caller)
    if not caller.can_transfer_from(company_id):
        raise wallet_not_found(company_id)
    command = body.to_command(
        company_id, actor=caller.subject, idempotency_key=key(idempotency_key)
    )
    result = await write(state, command)
    return TransferOut(
        transfer_id=UUID(result["transfer_id"]),
        from_company_id=company_id,
        to_company_id=body.to_company_id,
        amount=result["amount"],
        commission=result["commission"],
        net_amount=result["net_amount"],
        gift_type=body.gift_type,
        message=body.message,
        position=result["position"],
    )


@router.get("/transfers", tags=["operator"])
async def list_transfers(
    state: State,
    caller: Operator,
    company: Annotated[
        str | None, Query(pattern=KEY_PATTERN, description="sent or received")
    ] = None,
    from_: Since = None,
    to: Until = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    min_position: MinPosition = None,
) -> TransfersPage:
    """Transfers, newest first, with totals per currency of everything the filters match
    (computed only when bounded by ``company`` or ``from``) (scope billing.manage)."""
    reads = await fresh(state, min_position)
    filters = EntryFilters(company_id=company, since=from_, until=to)
    rows = await reads.transfers(
        filters, before_position=int(cursor) if cursor else None, limit=limit + 1
    )
    rows, next_cursor = page(rows, limit, "position")
    totals = None
    if company is not None or from_ is not None:
        totals = {r["currency"]: _totals(r) for r in await reads.transfer_totals(filters)}
    return TransfersPage(items=[_record(r) for r in rows], next_cursor=next_cursor, totals=totals)


def _record(row: Any) -> TransferRecordOut:
    return TransferRecordOut(
        id=row["transfer_id"], from_company_id=row["from_company_id"],
        to_company_id=row["to_company_id"], currency=row["currency"],
        amount=format_amount(row["amount"]), commission=format_amount(row["commission"]),
        net_amount=format_amount(row["net_amount"]), note=row["note"],
        gift_type=row["gift_type"], message=row["message"], actor=row["actor"],
        occurred_at=row["occurred_at"], position=row["position"],
    )  # fmt: skip


def _totals(row: Any) -> TransferTotals:
    return TransferTotals(
        count=row["count"],
        **{name: format_amount(row[name])
           for name in ("amount", "commission", "net_amount", "sent", "received")},
    )  # fmt: skip
