"""Top-up requests: tenants request and read their own; operators approve, reject, mark paid."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from ledger_service.api.auth import require_view
from ledger_service.api.errors import ApiError
from ledger_service.api.routes.auto_open import open_on_first_use
from ledger_service.api.routes.dependencies import (
    Caller,
    Cursor,
    IdempotencyKey,
    Limit,
    MinPosition,
    Operator,
    State,
    fresh,
    key,
    page,
    see,
    wallet_not_found,
    write,
)
from ledger_service.domain.errors import WalletNotFound
from ledger_service.domain.money import format_amount
from ledger_service.service.topups import ApproveTopup, TopupChanged
from schemas.api import KEY_PATTERN, PaymentOrderOut, TopupOut, TopupsPage, TopupStatusName
from schemas.requests import CancelIn, MarkPaidIn, RejectIn, ReleaseIn, TopupRequestIn

router = APIRouter()


@router.post("/topup-requests", status_code=201, tags=["tenant"])
async def request_topup(
    body: TopupRequestIn, state: State, caller: Caller, idempotency_key: IdempotencyKey
) -> TopupOut:
    """Ask for prepaid credit (scope billing.view, own company). An ``invoice`` request
    starts ``pending`` for an operator to approve; a ``card`` request is invoiced at once and
    answered with its ``payment_order``, whose ``checkout_url`` the payer opens."""
    see(caller, body.company_id)
    command = body.to_command(actor=caller.subject, idempotency_key=key(idempotency_key))
    try:
        result = await write(state, command)
    except WalletNotFound:
        if await open_on_first_use(state, caller, body.company_id) is None:
            raise
        result = await write(state, command)
    order = result.get("payment_order")
    return TopupOut(
        id=UUID(result["topup_id"]),
        company_id=body.company_id,
        status=result["status"],
        review_rules=result.get("review_rules"),
        credit_unit=result.get("credit_unit"),
        credit_rate=result.get("credit_rate"),
        credits=result.get("credits"),
        amount=body.amount,
        currency=body.currency,
        note=body.note,
        invoice_number=result.get("invoice_number"),
        requested_by=caller.subject,
        payment_order=None if order is None else PaymentOrderOut.of(order),
        position=result["position"],
    )


@router.get("/topup-requests", tags=["tenant", "operator"])
async def list_topups(
    state: State,
    caller: Caller,
    status: TopupStatusName | None = None,
    company: Annotated[str | None, Query(pattern=KEY_PATTERN)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    min_position: MinPosition = None,
) -> TopupsPage:
    """Tenants: their own company's requests. Operators: every company's (filter ``company``)."""
    require_view(caller)
    if not caller.is_operator:
        if company is not None and company != caller.company_id:
            raise wallet_not_found(company)
        company = caller.company_id
    rows = await (await fresh(state, min_position)).topups(
        company_id=company, status=status,
        before_position=int(cursor) if cursor else None, limit=limit + 1,
    )  # fmt: skip
    rows, next_cursor = page(rows, limit, "created_position")
    return TopupsPage(items=[_topup(r) for r in rows], next_cursor=next_cursor)


@router.get("/topup-requests/{topup_id}", tags=["tenant", "operator"])
async def get_topup(
    topup_id: UUID, state: State, caller: Caller, min_position: MinPosition = None
) -> TopupOut:
    """One top-up request (tenants: their own company's only)."""
    require_view(caller)
    row = await (await fresh(state, min_position)).topup(topup_id)
    if row is None or not caller.can_see(row["company_id"]):
        raise ApiError(404, "TOPUP_NOT_FOUND", f"no top-up request {topup_id}")
    return _topup(row)


def _topup(row: Any) -> TopupOut:
    return TopupOut(
        id=row["topup_id"],
        company_id=row["company_id"],
        status=row["status"],
        review_rules=row["review_rules"] or None,
        credit_unit=row["credit_unit"],
        credit_rate=None if row["credit_rate"] is None else format_amount(row["credit_rate"]),
        credits=None if row["credits"] is None else format_amount(row["credits"]),
        amount=format_amount(row["amount"]),
        tax=format_amount(row["tax"]),
        fee=format_amount(row["fee"]),
        total=format_amount(row["amount"] + row["tax"] + row["fee"]),
        pack=row["pack"],
        bonus=format_amount(row["bonus"]),
        currency=row["currency"],
        note=row["note"],
        invoice_number=row["invoice_number"],
        payment_reference=row["payment_reference"],
        reason=row["reason"],
        requested_by=row["requested_by"],
        approved_by=row["approved_by"],
        paid_by=row["paid_by"],
        rejected_by=row["rejected_by"],
        requested_at=row["requested_at"],
        approved_at=row["approved_at"],
        completed_at=row["completed_at"],
        rejected_at=row["rejected_at"],
        cancelled_at=row["cancelled_at"],
        updated_at=row["updated_at"],
    )


def _changed(result: TopupChanged) -> TopupOut:
    return TopupOut(
        id=UUID(result["topup_id"]),
        company_id=result["company_id"],
        status=result["status"],
        invoice_number=result["invoice_number"],
        position=result.get("position"),
    )


@router.post("/topup-requests/{topup_id}/approve", tags=["operator"])
async def approve_topup(
    topup_id: UUID, state: State, caller: Operator, idempotency_key: IdempotencyKey
) -> TopupOut:
    """pending → invoiced, issuing the invoice number (scope billing.manage)."""
    command = ApproveTopup(
        topup_id=topup_id, actor=caller.subject, idempotency_key=key(idempotency_key)
    )
    return _changed(await write(state, command))


@router.post("/topup-requests/{topup_id}/release", tags=["operator"])
async def release_topup(
    topup_id: UUID,
    body: ReleaseIn,
    state: State,
    caller: Operator,
    idempotency_key: IdempotencyKey,
) -> TopupOut:
    """needs_review → pending; a card request is invoiced at once and answered with its new
    ``payment_order`` (scope billing.manage). Reject it instead with ``/reject``."""
    idempotency = key(idempotency_key)
    command = body.to_command(topup_id, actor=caller.subject, idempotency_key=idempotency)
    result = await write(state, command)
    order = result.get("payment_order")
    return TopupOut(
        id=topup_id,
        company_id=result.get("company_id", ""),
        status=result["status"],
        invoice_number=result.get("invoice_number"),
        payment_order=None if order is None else PaymentOrderOut.of(order),
        position=result["position"],
    )


@router.post("/topup-requests/{topup_id}/reject", tags=["operator"])
async def reject_topup(
    topup_id: UUID,
    body: RejectIn,
    state: State,
    caller: Operator,
    idempotency_key: IdempotencyKey,
) -> TopupOut:
    """pending | needs_review → rejected, with a reason (scope billing.manage)."""
    idempotency = key(idempotency_key)
    command = body.to_command(topup_id, actor=caller.subject, idempotency_key=idempotency)
    return _changed(await write(state, command))


@router.post("/topup-requests/{topup_id}/mark-paid", tags=["operator"])
async def mark_topup_paid(
    topup_id: UUID,
    body: MarkPaidIn,
    state: State,
    caller: Operator,
    idempotency_key: IdempotencyKey,
) -> TopupOut:
    """invoiced → completed, crediting the wallet exactly once (scope billing.manage)."""
    idempotency = key(idempotency_key)
    command = body.to_command(topup_id, actor=caller.subject, idempotency_key=idempotency)
    return _changed(await write(state, command))


@router.post("/topup-requests/{topup_id}/cancel", tags=["tenant", "operator"])
async def cancel_topup(
    topup_id: UUID,
    state: State,
    caller: Caller,
    idempotency_key: IdempotencyKey,
    body: CancelIn | None = None,
) -> TopupOut:
    """pending | invoiced → cancelled. Tenants (scope billing.view) cancel their own company's
    pending requests; operators also invoiced ones. The body (``reason``) is optional."""
    require_view(caller)
    if not caller.is_operator and caller.company_id is None:
        raise ApiError(403, "INSUFFICIENT_SCOPE", "a tenant token must name its company_id")
    idempotency = key(idempotency_key)
    command = (body or CancelIn()).to_command(
        topup_id,
        actor=caller.subject,
        idempotency_key=idempotency,
        tenant_company_id=None if caller.is_operator else caller.company_id,
    )
    return _changed(await write(state, command))
