"""Operator overview and queries across companies: money in circulation, top-ups by status,
usage totals, every company's transactions, and one company's ledger totals."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ledger_service.api.routes.dependencies import (
    CompanyPath,
    Cursor,
    Limit,
    MinPosition,
    Operator,
    Since,
    State,
    Until,
    fresh,
    page,
    wallet_not_found,
)
from ledger_service.api.routes.history import entry_out
from ledger_service.domain.money import format_amount
from projections.queries import EntryFilters
from schemas.api import (
    KEY_PATTERN,
    AdminEntryOut,
    AdminStatsOut,
    AdminTransactionsPage,
    CirculationOut,
    CompanyLedgerOut,
    CompanyLedgerTotals,
    EntrySummaryRow,
    TopupStatusOut,
    UsageTotalsOut,
)

router = APIRouter()


@router.get("/admin/stats", tags=["operator"])
async def admin_stats(
    state: State, caller: Operator, min_position: MinPosition = None
) -> AdminStatsOut:
    """Money in circulation by bucket, top-ups by status, usage totals (scope billing.manage)."""
    stats = await (await fresh(state, min_position)).admin_stats()
    usage = stats["usage"]
    return AdminStatsOut(
        position=stats["position"],
        money_in_circulation={
            r["currency"]: CirculationOut(
                wallets=r["wallets"],
                included=format_amount(r["included"]),
                grants=format_amount(r["granted"]),
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


@router.get("/admin/transactions", tags=["operator"])
async def admin_transactions(
    state: State,
    caller: Operator,
    company: Annotated[str | None, Query(pattern=KEY_PATTERN)] = None,
    kind: Annotated[str | None, Query(pattern=KEY_PATTERN)] = None,
    sender: Annotated[str | None, Query(pattern=KEY_PATTERN)] = None,
    from_: Since = None,
    to: Until = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    min_position: MinPosition = None,
) -> AdminTransactionsPage:
    """Ledger entries of every company, newest first (scope billing.manage), with a summary by
    kind of everything the filters match. The summary is computed only when the filters are
    bounded (``company`` or ``from``), so a page never scans the whole ledger."""
    reads = await fresh(state, min_position)
    filters = EntryFilters(company, kind, sender, from_, to)
    rows = await reads.admin_entries(
        filters, before_position=int(cursor) if cursor else None, limit=limit + 1
    )
    rows, next_cursor = page(rows, limit, "position")
    summary = None
    if company is not None or from_ is not None:
        summary = [
            EntrySummaryRow(
                kind=r["kind"], direction=r["direction"], count=r["count"],
                amount=format_amount(r["amount"]),
            )
            for r in await reads.entry_summary(filters)
        ]  # fmt: skip
    items = [AdminEntryOut(company_id=r["company_id"], **entry_out(r).model_dump()) for r in rows]
    return AdminTransactionsPage(items=items, next_cursor=next_cursor, summary=summary)


@router.get("/admin/companies/{company_id}/ledger", tags=["operator"])
async def company_ledger(
    company_id: CompanyPath, state: State, caller: Operator, min_position: MinPosition = None
) -> CompanyLedgerOut:
    """What a company purchased, was granted, used, was refunded, transferred in and out,
    adjusted and had expire, per currency over all its pools, and the balance those add up to
    (scope billing.manage)."""
    reads = await fresh(state, min_position)
    rows = await reads.company_ledger(company_id)
    if not rows and not await reads.wallet_exists(company_id):
        raise wallet_not_found(company_id)
    currencies = {
        r["currency"]: CompanyLedgerTotals(
            entries=r["entries"],
            **{name: format_amount(r[name]) for name in CompanyLedgerTotals.model_fields
               if name != "entries"},
        )
        for r in rows
    }  # fmt: skip
    position = max((r["position"] for r in rows), default=0)
    return CompanyLedgerOut(company_id=company_id, currencies=currencies, position=position)
