"""Operator pages: the top-up review queue and its actions (release a request the risk review
held, approve → invoice, reject with a reason, mark paid with the payment reference; cancel is
shared with tenants)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ledger_service.api.routes.dependencies import MinPosition
from ledger_service.console.pages import topup_view, wallet_row_view
from ledger_service.console.web import (
    OperatorViewer,
    checked_form,
    company_filter,
    form_key,
    parsed,
    reads,
    redirect,
    render,
    run,
)
from ledger_service.service.topups import ApproveTopup
from schemas.api import KEY_PATTERN
from schemas.requests import MarkPaidIn, RejectIn, ReleaseIn

router = APIRouter()
PAGE_SIZE = 25
Status = Literal["needs_review", "pending", "invoiced", "completed", "rejected", "cancelled", "all"]
STATUSES = ("needs_review", "pending", "invoiced", "completed", "rejected", "cancelled", "all")


@router.get("/ops/topups")
async def topup_queue(
    request: Request,
    session: OperatorViewer,
    status: Status = "pending",
    company: Annotated[str | None, Query(pattern=f"(^$)|({KEY_PATTERN})")] = None,
    cursor: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    min_position: MinPosition = None,
) -> HTMLResponse:
    rows = await (await reads(request, min_position)).topups(
        company_id=company or None,
        status=None if status == "all" else status,
        before_position=cursor,
        limit=PAGE_SIZE + 1,
    )
    return render(
        request,
        "ops_topups.html",
        session,
        status=status,
        statuses=STATUSES,
        company=company or "",
        topups=[topup_view(r, operator=True) for r in rows[:PAGE_SIZE]],
        next_cursor=rows[PAGE_SIZE - 1]["created_position"] if len(rows) > PAGE_SIZE else None,
    )


def _back(
    fields: dict[str, str], status: str, position: int | None, notice: str
) -> RedirectResponse:
    """Back to the queue, showing where the top-up went, within the company filter."""
    company = company_filter(fields)
    return redirect(
        "/ops/topups", status=status, company=company, min_position=position, notice=notice
    )


@router.post("/ops/topups/{topup_id}/approve")
async def approve(request: Request, topup_id: UUID, session: OperatorViewer) -> RedirectResponse:
    fields = await checked_form(request, session)
    command = ApproveTopup(
        topup_id=topup_id, actor=session.subject, idempotency_key=form_key(fields)
    )
    result = await run(request, command)
    return _back(fields, "invoiced", result.get("position"), "approved")


@router.post("/ops/topups/{topup_id}/release")
async def release(request: Request, topup_id: UUID, session: OperatorViewer) -> RedirectResponse:
    fields = await checked_form(request, session)
    command = ReleaseIn().to_command(
        topup_id, actor=session.subject, idempotency_key=form_key(fields)
    )
    result = await run(request, command)
    return _back(fields, result["status"], result.get("position"), "released")


@router.post("/ops/topups/{topup_id}/reject")
async def reject(request: Request, topup_id: UUID, session: OperatorViewer) -> RedirectResponse:
    fields = await checked_form(request, session)
    body = parsed(RejectIn, reason=fields.get("reason", "").strip())
    command = body.to_command(topup_id, actor=session.subject, idempotency_key=form_key(fields))
    result = await run(request, command)
    return _back(fields, "rejected", result.get("position"), "rejected")


@router.post("/ops/topups/{topup_id}/mark-paid")
async def mark_paid(request: Request, topup_id: UUID, session: OperatorViewer) -> RedirectResponse:
    fields = await checked_form(request, session)
    body = parsed(MarkPaidIn, payment_reference=fields.get("payment_reference", "").strip())
    command = body.to_command(topup_id, actor=session.subject, idempotency_key=form_key(fields))
    result = await run(request, command)
    return _back(fields, "completed", result.get("position"), "paid")


@router.get("/ops/wallets")
async def wallets_page(
    request: Request,
    session: OperatorViewer,
    q: Annotated[str | None, Query(pattern=f"(^$)|({KEY_PATTERN})")] = None,
    after: Annotated[str | None, Query(max_length=200, pattern=r"^[^|]+\|[^|]*$")] = None,
    min_position: MinPosition = None,
) -> HTMLResponse:
    """Every pool, by company id, with a company-id search; ``after`` is ``company|pool``."""
    cursor = None if after is None else _pair(after)
    rows = await (await reads(request, min_position)).wallets(q or None, cursor, PAGE_SIZE + 1)
    last = rows[PAGE_SIZE - 1] if len(rows) > PAGE_SIZE else None
    return render(
        request,
        "ops_wallets.html",
        session,
        q=q or "",
        wallets=[wallet_row_view(r) for r in rows[:PAGE_SIZE]],
        next_after=None if last is None else f"{last['company_id']}|{last['pool_sender_id'] or ''}",
    )


def _pair(after: str) -> tuple[str, str]:
    company, _, pool = after.partition("|")
    return company, pool


@router.get("/ops/stats")
async def stats_page(request: Request, session: OperatorViewer) -> HTMLResponse:
    stats = await (await reads(request)).admin_stats()
    return render(request, "ops_stats.html", session, stats=stats)
