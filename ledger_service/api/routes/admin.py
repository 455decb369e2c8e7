"""Operator overview: money in circulation, top-ups by status, usage totals."""

from __future__ import annotations

from fastapi import APIRouter

from ledger_service.api.routes.dependencies import MinPosition, Operator, State, fresh
from ledger_service.domain.money import format_amount
from schemas.api import AdminStatsOut, CirculationOut, TopupStatusOut, UsageTotalsOut

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
