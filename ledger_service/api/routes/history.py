"""What happened to a wallet: ledger entries, alerts raised and usage, newest first."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from ledger_service.api.routes.dependencies import (
    Caller,
    CompanyPath,
    Cursor,
    FirstDay,
    LastDay,
    Limit,
    MinPosition,
    Since,
    State,
    Until,
    amount_text,
    fresh,
    page,
    see,
    wallet_not_found,
)
from ledger_service.domain.money import format_amount
from schemas.api import (
    KEY_PATTERN,
    AlertOut,
    AlertsPage,
    EntriesPage,
    EntryOut,
    UsageOut,
    UsageRow,
)

router = APIRouter()


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
    see(caller, company_id)
    reads = await fresh(state, min_position)
    rows = await reads.alerts(company_id, int(cursor) if cursor else None, limit)
    if not rows and not await reads.wallet_exists(company_id):
        raise wallet_not_found(company_id)
    rows, next_cursor = page(rows, limit, "position")
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
    from_: Since = None,
    to: Until = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    min_position: MinPosition = None,
) -> EntriesPage:
    """Ledger entries, newest first; pass ``next_cursor`` back as ``cursor`` for older ones."""
    see(caller, company_id)
    reads = await fresh(state, min_position)
    rows = await reads.entries(
        company_id, kind=kind, sender=sender, since=from_, until=to,
        before_position=int(cursor) if cursor else None, limit=limit + 1,
    )  # fmt: skip
    if not rows and not await reads.wallet_exists(company_id):
        raise wallet_not_found(company_id)
    rows, next_cursor = page(rows, limit, "position")
    return EntriesPage(items=[entry_out(r) for r in rows], next_cursor=next_cursor)


def _split(row: Any) -> dict[str, str]:
    """The entry's buckets; ``grants`` only when it moved grant money (shape kept otherwise)."""
    split = {b: format_amount(row[b]) for b in ("included", "prepaid", "postpaid", "overage")}
    if row["grants"]:
        split["grants"] = format_amount(row["grants"])
    return split


def entry_out(row: Any) -> EntryOut:
    return EntryOut(
        position=row["position"],
        wallet_id=row["wallet_id"],
        direction=row["direction"],
        kind=row["kind"],
        amount=format_amount(row["amount"]),
        split=_split(row),
        balance_before=format_amount(row["balance_before"]),
        balance_after=format_amount(row["balance_after"]),
        counter_account=row["counter_account"],
        reference=row["reference"],
        sender_id=row["sender_id"],
        conversation_id=row["conversation_id"],
        category=row["category"],
        units=row["units"],
        unit_price=amount_text(row["unit_price"]),
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
    from_: FirstDay = None,
    to: LastDay = None,
    min_position: MinPosition = None,
) -> UsageOut:
    """Usage counts and amounts grouped by sender, category or day."""
    see(caller, company_id)
    reads = await fresh(state, min_position)
    rows = await reads.usage(company_id, group_by=group_by, sender=sender, since=from_, until=to)
    if not rows and not await reads.wallet_exists(company_id):
        raise wallet_not_found(company_id)
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
