"""The ``/v1`` endpoints: tenant reads and top-up requests, operator administration.

Reads query the read models through asyncpg; writes call the (synchronous) application in a
worker thread and answer with the event-store ``position`` of what they wrote, which a later read
can pass as ``min_position`` to wait (bounded) until the projection has caught up with it.
Every write needs an ``Idempotency-Key`` header: a retry with the same key and body returns the
original status and body and writes nothing; the same key with another body is a 409.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ledger_service.api.auth import Authenticator, Principal, require_manage, require_view
from ledger_service.api.authorization import authorize, blocked_today
from ledger_service.api.context import bind_company
from ledger_service.api.errors import ERROR_RESPONSES, ApiError
from ledger_service.domain.money import format_amount
from ledger_service.service.ledger import LedgerApplication
from projections.queries import ReadModels
from schemas.api import (
    KEY_PATTERN,
    AdminStatsOut,
    AlertOut,
    AlertsPage,
    AuthorizationOut,
    Buckets,
    CirculationOut,
    ConfigureWalletIn,
    CycleOut,
    EntriesPage,
    EntryOut,
    MarkPaidIn,
    OpenWalletIn,
    RejectIn,
    SenderIn,
    SenderWriteOut,
    TopupOut,
    TopupRequestIn,
    TopupsPage,
    TopupStatusOut,
    TransferIn,
    TransferOut,
    UsageOut,
    UsageRow,
    UsageTotalsOut,
    WalletOut,
    WalletWriteOut,
)

T = TypeVar("T")
PAGE_SIZE_MAX = 500


@dataclass
class ApiState:
    """What the routes need; ``reads`` is set by the app's lifespan (an asyncpg pool)."""

    ledger: LedgerApplication
    authenticate: Authenticator
    read_wait_timeout_s: float = 2.0
    reads: ReadModels | None = None
    extras: dict[str, Any] = field(default_factory=dict)


_bearer = HTTPBearer(auto_error=False, description="JWT (HS256) with sub, company_id, scopes")


def state_of(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def reads_of(state: ApiState) -> ReadModels:
    if state.reads is None:
        raise ApiError(503, "UNAVAILABLE", "the read-model pool is not open")
    return state.reads


async def principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    caller = state_of(request).authenticate(request.headers.get("authorization"))
    bind_company(caller.company_id)
    return caller


State = Annotated[ApiState, Depends(state_of)]
Caller = Annotated[Principal, Depends(principal)]
CompanyPath = Annotated[str, Path(pattern=KEY_PATTERN, description="company id")]
MinPosition = Annotated[
    int | None,
    Query(ge=0, le=2**62, description="wait (bounded) until read models include this position"),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="required: a retry with the same key and body returns the original answer",
    ),
]
Cursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description="next_cursor")]
Limit = Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)]

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


# -- helpers --------------------------------------------------------------------------------


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else format_amount(value)


def _wallet_not_found(company_id: str) -> ApiError:
    return ApiError(404, "WALLET_NOT_FOUND", f"no wallet for company {company_id}")


def _see(caller: Principal, company_id: str) -> None:
    """Tenants see their own company only; another company looks like no company at all."""
    require_view(caller)
    if not caller.can_see(company_id):
        raise _wallet_not_found(company_id)


async def _fresh(state: ApiState, min_position: int | None) -> ReadModels:
    reads = reads_of(state)
    if min_position and not await reads.wait_for(min_position, state.read_wait_timeout_s):
        raise ApiError(
            503,
            "PROJECTION_BEHIND",
            f"read models have not reached position {min_position} yet; retry shortly",
            {"Retry-After": "1"},
        )
    return reads


def _key(idempotency_key: str | None) -> str:
    if not idempotency_key:
        raise ApiError(400, "IDEMPOTENCY_KEY_REQUIRED", "writes need an Idempotency-Key header")
    return idempotency_key


async def _write(command: Any, /, **kwargs: Any) -> dict[str, Any]:
    """Run an application command in a worker thread (eventsourcing is synchronous)."""
    result: dict[str, Any] = await asyncio.to_thread(functools.partial(command, **kwargs))
    return result


def _page(rows: list[Any], limit: int, column: str) -> tuple[list[Any], str | None]:
    """Rows were fetched with ``limit + 1``: a cursor only when there really is a next page."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, str(rows[-1][column])


# -- wallets --------------------------------------------------------------------------------


@router.get("/wallets/{company_id}", tags=["tenant"])
async def get_wallet(
    company_id: CompanyPath,
    state: State,
    caller: Caller,
    min_position: MinPosition = None,
    pool_sender_id: Annotated[str | None, Query(pattern=KEY_PATTERN)] = None,
) -> WalletOut:
    """The company's pool: balance, available, buckets (scope billing.view, own company)."""
    _see(caller, company_id)
    row = await (await _fresh(state, min_position)).wallet(company_id, pool_sender_id)
    if row is None:
        raise _wallet_not_found(company_id)
    return WalletOut(
        company_id=row["company_id"],
        wallet_id=row["wallet_id"],
        pool_sender_id=row["pool_sender_id"],
        currency=row["currency"],
        mode=row["mode"],
        balance=format_amount(row["balance"]),
        available=format_amount(row["available"]),
        postpaid_limit=format_amount(row["postpaid_limit"]),
        included_quota=format_amount(row["included_quota"]),
        overage_total=format_amount(row["overage_total"]),
        buckets=Buckets(
            included=format_amount(row["included"]),
            prepaid=format_amount(row["prepaid"]),
            postpaid_used=format_amount(row["postpaid_used"]),
        ),
        senders=row["senders"],
        policies=json.loads(row["policies"]),
        cycle=CycleOut(start=row["cycle_start"], next_start=row["next_cycle_at"]),
        alerts_active=row["alerts_active"],
        blocked_categories=blocked_today(row["blocked"], row["policies"], datetime.now(UTC)),
        updated_at=row["updated_at"],
        position=row["position"],
    )


@router.get("/wallets/{company_id}/authorization", tags=["tenant"])
async def authorize_send(
    company_id: CompanyPath,
    state: State,
    caller: Caller,
    waba_id: Annotated[str, Query(pattern=KEY_PATTERN)],
    category: Annotated[str, Query(pattern=KEY_PATTERN)],
    units: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    min_position: MinPosition = None,
) -> AuthorizationOut:
    """May ``waba_id`` send ``units`` messages of ``category``? Allow or deny with the reason,
    from read models (scope billing.view, own company). Advice before sending, not a hold."""
    _see(caller, company_id)
    reads = await _fresh(state, min_position)
    row = await reads.wallet_of_sender(company_id, waba_id)
    if row is None and not await reads.wallet_exists(company_id):
        raise _wallet_not_found(company_id)
    return authorize(
        row,
        company_id=company_id,
        waba_id=waba_id,
        category=category,
        units=units,
        now=datetime.now(UTC),
    )


@router.get("/wallets/{company_id}/alerts", tags=["tenant"])
async def list_alerts(
    company_id: CompanyPath,
    state: State,
    caller: Caller,
    cursor: Cursor = None,
    limit: Limit = 50,
    min_position: MinPosition = None,
) -> AlertsPage:
    """Alerts raised for the company's wallets, newest first."""
    _see(caller, company_id)
    reads = await _fresh(state, min_position)
    rows = await reads.alerts(company_id, int(cursor) if cursor else None, limit)
    if not rows and not await reads.wallet_exists(company_id):
        raise _wallet_not_found(company_id)
    rows, next_cursor = _page(rows, limit, "position")
    return AlertsPage(
        items=[
            AlertOut(
                position=r["position"],
                alert=r["alert"],
                detail=json.loads(r["detail"]),
                occurred_at=r["occurred_at"],
            )
            for r in rows
        ],
        next_cursor=next_cursor,
    )


@router.get("/wallets/{company_id}/transactions", tags=["tenant"])
async def list_transactions(
    company_id: CompanyPath,
    state: State,
    caller: Caller,
    kind: Annotated[str | None, Query(pattern=KEY_PATTERN)] = None,
    sender: Annotated[str | None, Query(pattern=KEY_PATTERN)] = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: Annotated[datetime | None, Query(description="exclusive")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    min_position: MinPosition = None,
) -> EntriesPage:
    """Ledger entries, newest first; pass ``next_cursor`` back as ``cursor`` for older ones."""
    _see(caller, company_id)
    reads = await _fresh(state, min_position)
    rows = await reads.entries(
        company_id, kind=kind, sender=sender, since=from_, until=to,
        before_position=int(cursor) if cursor else None, limit=limit + 1,
    )  # fmt: skip
    if not rows and not await reads.wallet_exists(company_id):
        raise _wallet_not_found(company_id)
    rows, next_cursor = _page(rows, limit, "position")
    return EntriesPage(items=[_entry(r) for r in rows], next_cursor=next_cursor)


def _entry(row: Any) -> EntryOut:
    return EntryOut(
        position=row["position"],
        wallet_id=row["wallet_id"],
        direction=row["direction"],
        kind=row["kind"],
        amount=format_amount(row["amount"]),
        split={b: format_amount(row[b]) for b in ("included", "prepaid", "postpaid", "overage")},
        balance_before=format_amount(row["balance_before"]),
        balance_after=format_amount(row["balance_after"]),
        counter_account=row["counter_account"],
        reference=row["reference"],
        sender_id=row["sender_id"],
        conversation_id=row["conversation_id"],
        category=row["category"],
        units=row["units"],
        unit_price=_amount(row["unit_price"]),
        actor=row["actor"],
        occurred_at=row["occurred_at"],
    )


@router.get("/wallets/{company_id}/usage", tags=["tenant"])
async def get_usage(
    company_id: CompanyPath,
    state: State,
    caller: Caller,
    group_by: Literal["sender", "category", "day"] = "day",
    sender: Annotated[str | None, Query(pattern=KEY_PATTERN)] = None,
    from_: Annotated[date | None, Query(alias="from", description="first day (UTC)")] = None,
    to: Annotated[date | None, Query(description="last day (UTC), inclusive")] = None,
    min_position: MinPosition = None,
) -> UsageOut:
    """Usage counts and amounts grouped by sender, category or day."""
    _see(caller, company_id)
    reads = await _fresh(state, min_position)
    rows = await reads.usage(company_id, group_by=group_by, sender=sender, since=from_, until=to)
    if not rows and not await reads.wallet_exists(company_id):
        raise _wallet_not_found(company_id)
    items = [
        UsageRow(
            key=r["key"],
            billable_count=r["billable_count"],
            failed_count=r["failed_count"],
            units=r["units"],
            failed_units=r["failed_units"],
            amount=format_amount(r["amount"]),
        )
        for r in rows
    ]
    return UsageOut(company_id=company_id, group_by=group_by, items=items)


@router.post("/wallets", status_code=201, tags=["operator"])
async def open_wallet(
    body: OpenWalletIn, state: State, caller: Caller, idempotency_key: IdempotencyKey = None
) -> WalletWriteOut:
    """Open a company's wallet (scope billing.manage)."""
    require_manage(caller)
    result = await _write(
        state.ledger.open_wallet,
        **body.model_dump(),
        actor=caller.subject,
        idempotency_key=_key(idempotency_key),
    )
    return WalletWriteOut(
        company_id=body.company_id, wallet_id=result["wallet_id"], position=result["position"]
    )


@router.patch("/wallets/{company_id}", tags=["operator"])
async def configure_wallet(
    company_id: CompanyPath,
    body: ConfigureWalletIn,
    state: State,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> WalletWriteOut:
    """Change limits, quota, rate card, alert thresholds, spending caps, auto top-up and the
    billing-cycle anchor (scope billing.manage). Every change is an event."""
    require_manage(caller)
    result = await _write(
        state.ledger.configure_wallet,
        company_id=company_id,
        **body.model_dump(),
        actor=caller.subject,
        idempotency_key=_key(idempotency_key),
    )
    return WalletWriteOut(company_id=company_id, position=result["position"])


@router.post("/wallets/{company_id}/senders", status_code=201, tags=["operator"])
async def link_sender(
    company_id: CompanyPath,
    body: SenderIn,
    state: State,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> SenderWriteOut:
    """Link a sender (WABA) to the company's pool (scope billing.manage)."""
    require_manage(caller)
    result = await _write(
        state.ledger.link_sender,
        company_id=company_id,
        waba_id=body.waba_id,
        actor=caller.subject,
        idempotency_key=_key(idempotency_key),
    )
    return SenderWriteOut(company_id=company_id, waba_id=body.waba_id, position=result["position"])


@router.delete("/wallets/{company_id}/senders/{waba_id}", tags=["operator"])
async def unlink_sender(
    company_id: CompanyPath,
    waba_id: Annotated[str, Path(pattern=KEY_PATTERN)],
    state: State,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> SenderWriteOut:
    """Unlink a sender from the company's pool (scope billing.manage)."""
    require_manage(caller)
    result = await _write(
        state.ledger.unlink_sender,
        company_id=company_id,
        waba_id=waba_id,
        actor=caller.subject,
        idempotency_key=_key(idempotency_key),
    )
    return SenderWriteOut(company_id=company_id, waba_id=waba_id, position=result["position"])


# -- top-ups --------------------------------------------------------------------------------


@router.post("/topup-requests", status_code=201, tags=["tenant"])
async def request_topup(
    body: TopupRequestIn, state: State, caller: Caller, idempotency_key: IdempotencyKey = None
) -> TopupOut:
    """Ask for prepaid credit; starts ``pending`` (scope billing.view, own company)."""
    _see(caller, body.company_id)
    result = await _write(
        state.ledger.request_topup,
        company_id=body.company_id,
        amount=body.amount,
        currency=body.currency,
        note=body.note,
        actor=caller.subject,
        idempotency_key=_key(idempotency_key),
    )
    return TopupOut(
        id=result["topup_id"],
        company_id=body.company_id,
        status=result["status"],
        amount=body.amount,
        currency=body.currency,
        note=body.note,
        requested_by=caller.subject,
        position=result["position"],
    )


@router.get("/topup-requests", tags=["tenant", "operator"])
async def list_topups(
    state: State,
    caller: Caller,
    status: Literal["pending", "invoiced", "completed", "rejected", "cancelled"] | None = None,
    company: Annotated[str | None, Query(pattern=KEY_PATTERN)] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    min_position: MinPosition = None,
) -> TopupsPage:
    """Tenants: their own company's requests. Operators: every company's (filter ``company``)."""
    require_view(caller)
    if not caller.is_operator:
        if company is not None and company != caller.company_id:
            raise _wallet_not_found(company)
        company = caller.company_id
    rows = await (await _fresh(state, min_position)).topups(
        company_id=company, status=status,
        before_position=int(cursor) if cursor else None, limit=limit + 1,
    )  # fmt: skip
    rows, next_cursor = _page(rows, limit, "created_position")
    return TopupsPage(items=[_topup(r) for r in rows], next_cursor=next_cursor)


@router.get("/topup-requests/{topup_id}", tags=["tenant", "operator"])
async def get_topup(
    topup_id: UUID, state: State, caller: Caller, min_position: MinPosition = None
) -> TopupOut:
    """One top-up request (tenants: their own company's only)."""
    require_view(caller)
    row = await (await _fresh(state, min_position)).topup(topup_id)
    if row is None or not caller.can_see(row["company_id"]):
        raise ApiError(404, "TOPUP_NOT_FOUND", f"no top-up request {topup_id}")
    return _topup(row)


def _topup(row: Any) -> TopupOut:
    return TopupOut(
        id=row["topup_id"],
        company_id=row["company_id"],
        status=row["status"],
        amount=format_amount(row["amount"]),
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


async def _topup_command(
    command: Any, topup_id: UUID, caller: Principal, idempotency_key: str | None, **kwargs: Any
) -> TopupOut:
    require_manage(caller)
    result = await _write(
        command,
        topup_id=topup_id,
        actor=caller.subject,
        idempotency_key=_key(idempotency_key),
        **kwargs,
    )
    return TopupOut(
        id=result["topup_id"],
        company_id=result["company_id"],
        status=result["status"],
        invoice_number=result["invoice_number"],
        position=result["position"],
    )


@router.post("/topup-requests/{topup_id}/approve", tags=["operator"])
async def approve_topup(
    topup_id: UUID, state: State, caller: Caller, idempotency_key: IdempotencyKey = None
) -> TopupOut:
    """pending → invoiced, issuing the invoice number (scope billing.manage)."""
    return await _topup_command(state.ledger.approve_topup, topup_id, caller, idempotency_key)


@router.post("/topup-requests/{topup_id}/reject", tags=["operator"])
async def reject_topup(
    topup_id: UUID,
    body: RejectIn,
    state: State,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> TopupOut:
    """pending → rejected, with a reason (scope billing.manage)."""
    return await _topup_command(
        state.ledger.reject_topup, topup_id, caller, idempotency_key, reason=body.reason
    )


@router.post("/topup-requests/{topup_id}/mark-paid", tags=["operator"])
async def mark_topup_paid(
    topup_id: UUID,
    body: MarkPaidIn,
    state: State,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> TopupOut:
    """invoiced → completed, crediting the wallet exactly once (scope billing.manage)."""
    return await _topup_command(
        state.ledger.mark_topup_paid,
        topup_id,
        caller,
        idempotency_key,
        payment_reference=body.payment_reference,
    )


# -- transfers and admin --------------------------------------------------------------------


@router.post("/transfers", status_code=201, tags=["operator"])
async def transfer(
    body: TransferIn, state: State, caller: Caller, idempotency_key: IdempotencyKey = None
) -> TransferOut:
    """Move prepaid money between companies, less commission (scope billing.manage)."""
    require_manage(caller)
    result = await _write(
        state.ledger.transfer,
        from_company_id=body.from_company_id,
        to_company_id=body.to_company_id,
        amount=body.amount,
        commission_rate=body.commission_rate,
        note=body.note,
        actor=caller.subject,
        idempotency_key=_key(idempotency_key),
    )
    return TransferOut(
        transfer_id=result["transfer_id"],
        from_company_id=body.from_company_id,
        to_company_id=body.to_company_id,
        amount=result["amount"],
        commission=result["commission"],
        net_amount=result["net_amount"],
        position=result["position"],
    )


@router.get("/admin/stats", tags=["operator"])
async def admin_stats(
    state: State, caller: Caller, min_position: MinPosition = None
) -> AdminStatsOut:
    """Money in circulation by bucket, top-ups by status, usage totals (scope billing.manage)."""
    require_manage(caller)
    stats = await (await _fresh(state, min_position)).admin_stats()
    usage = stats["usage"]
    return AdminStatsOut(
        position=stats["position"],
        money_in_circulation={
            r["currency"]: CirculationOut(
                wallets=r["wallets"],
                included=format_amount(r["included"]),
                prepaid=format_amount(r["prepaid"]),
                postpaid_used=format_amount(r["postpaid_used"]),
                balance=format_amount(r["balance"]),
            )
            for r in stats["circulation"]
        },
        topups_by_status={
            r["status"]: TopupStatusOut(count=r["count"], amount=format_amount(r["amount"]))
            for r in stats["topups"]
        },
        usage=UsageTotalsOut(
            billable_count=usage["billable_count"],
            failed_count=usage["failed_count"],
            units=usage["units"],
            amount=format_amount(usage["amount"]),
        ),
    )
