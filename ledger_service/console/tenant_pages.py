"""A company's pages: the wallet, its top-up requests, its usage. Tenants see their own company
only; operators see every company's (and more, on the operator pages)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ledger_service.api.routes.dependencies import MinPosition
from ledger_service.console.pages import money, topup_view, usage_chart, wallet_view
from ledger_service.console.wallet_settings_pages import policies_text, rate_card_text
from ledger_service.console.web import (
    Company,
    Cursor,
    PageError,
    Viewer,
    check_company,
    checked_form,
    company_filter,
    form_key,
    parsed,
    reads,
    redirect,
    render,
    run,
)
from schemas.api import KEY_PATTERN
from schemas.requests import CancelIn, TopupRequestIn

router = APIRouter()
Sender = Annotated[str | None, Query(pattern=f"(^$)|({KEY_PATTERN})")]
PAGE_SIZE = 25
USAGE_DAYS = 30


async def _wallet(request: Request, company_id: str, min_position: int | None) -> Any:
    row = await (await reads(request, min_position)).wallet(company_id, None)
    if row is None:
        raise PageError(
            404,
            "WALLET_NOT_FOUND",
            f"company {company_id} has no wallet yet: an operator opens it (POST /v1/wallets)",
        )
    return row


@router.get("/companies/{company_id}")
async def wallet_page(
    request: Request, company_id: Company, session: Viewer, min_position: MinPosition = None
) -> HTMLResponse:
    check_company(session, company_id)
    row = await _wallet(request, company_id, min_position)
    since = datetime.now(UTC) - timedelta(hours=24)
    burn = await (await reads(request)).usage_since(company_id, since)
    settings = None
    if session.principal.is_operator:
        settings = {
            "postpaid_limit": money(row["postpaid_limit"]),
            "included_quota": money(row["included_quota"]),
            "rate_card": rate_card_text(row["rate_card"]),
            "policies": policies_text(row["policies"]),
        }
    return render(
        request, "wallet.html", session, wallet=wallet_view(row), burn_24h=money(burn),
        settings=settings,
    )  # fmt: skip


@router.get("/companies/{company_id}/topups")
async def topups_page(
    request: Request,
    company_id: Company,
    session: Viewer,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> HTMLResponse:
    check_company(session, company_id)
    models = await reads(request, min_position)
    wallet = await models.wallet(company_id, None)
    rows = await models.topups(
        company_id=company_id, status=None, before_position=cursor, limit=PAGE_SIZE + 1
    )
    operator = session.principal.is_operator
    return render(
        request,
        "topups.html",
        session,
        company_id=company_id,
        company=company_id if operator else "",
        currency=None if wallet is None else wallet["currency"],
        topups=[topup_view(r, operator=operator) for r in rows[:PAGE_SIZE]],
        next_cursor=rows[PAGE_SIZE - 1]["created_position"] if len(rows) > PAGE_SIZE else None,
    )


@router.post("/companies/{company_id}/topups")
async def request_topup(request: Request, company_id: Company, session: Viewer) -> RedirectResponse:
    check_company(session, company_id)
    fields = await checked_form(request, session)
    body = parsed(
        TopupRequestIn,
        company_id=company_id,
        amount=fields.get("amount", "").strip(),
        currency=fields.get("currency", "").strip().upper(),
        note=fields.get("note", ""),
    )
    command = body.to_command(actor=session.subject, idempotency_key=form_key(fields))
    result = await run(request, command)
    return redirect(
        f"/companies/{company_id}/topups", min_position=result.get("position"), notice="requested"
    )


@router.post("/topups/{topup_id}/cancel")
async def cancel_topup(request: Request, topup_id: UUID, session: Viewer) -> RedirectResponse:
    """Tenants cancel their own pending requests; operators also invoiced ones."""
    fields = await checked_form(request, session)
    principal = session.principal
    body = parsed(CancelIn, reason=fields.get("reason", ""))
    command = body.to_command(
        topup_id,
        actor=session.subject,
        idempotency_key=form_key(fields),
        tenant_company_id=None if principal.is_operator else session.company_id,
    )
    result = await run(request, command)
    if principal.is_operator:
        company = company_filter(fields)
        return redirect(
            "/ops/topups", status="cancelled", company=company,
            min_position=result.get("position"), notice="cancelled",
        )  # fmt: skip
    path = f"/companies/{result['company_id']}/topups"
    return redirect(path, min_position=result.get("position"), notice="cancelled")


@router.get("/companies/{company_id}/usage")
async def usage_page(
    request: Request, company_id: Company, session: Viewer, sender: Sender = None
) -> HTMLResponse:
    check_company(session, company_id)
    wallet = await _wallet(request, company_id, None)
    now = datetime.now(UTC)
    sender = sender or None
    rows = await (await reads(request)).usage_overview(
        company_id, sender=sender, since=now.date() - timedelta(days=USAGE_DAYS - 1),
        burn_since=now - timedelta(hours=24),
    )  # fmt: skip
    by_group: dict[str, list[Any]] = {"day": [], "category": [], "sender": [], "burn": []}
    for row in rows:
        by_group[row["grp"]].append(row)
    return render(
        request,
        "usage.html",
        session,
        company_id=company_id,
        wallet=wallet,
        sender=sender,
        chart=usage_chart(by_group["day"], last_day=now.date(), days=USAGE_DAYS),
        senders=by_group["sender"],
        categories=by_group["category"],
        burn_24h=money(by_group["burn"][0]["amount"]),
    )
