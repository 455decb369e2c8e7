"""Legacy per-sender pools into one shared pool per company (operators): migrate a company, and
see which pools are still in use. See ``service.pools``.

The migration is idempotent by construction (each step's key derives from the company and the
pool), so it takes no ``Idempotency-Key``: a repeat replays what was done and does the rest.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query

from ledger_service.api.routes.dependencies import (
    CompanyPath,
    MinPosition,
    Operator,
    State,
    fresh,
    reads_of,
    wallet_not_found,
)
from ledger_service.domain.money import format_amount
from ledger_service.service.pools import MigrationReport, migrate_pools
from schemas.api import LegacyPoolOut, PoolCoverageOut, PoolMergeOut, PoolMigrationOut
from schemas.requests import PoolMigrationIn

router = APIRouter()
COVERAGE_LISTED_MAX = 1000


@router.post("/companies/{company_id}/pools/migrate", tags=["operator"])
async def migrate(
    company_id: CompanyPath,
    body: PoolMigrationIn,
    state: State,
    caller: Operator,
    min_position: MinPosition = None,
) -> PoolMigrationOut:
    """Merge the company's per-sender pools into its shared pool, opening it if needed:
    every pool's included quota, prepaid money and debt cross as paired entries, its sender
    is relinked, and it is closed (scope billing.manage). ``dry_run`` reports the plan."""
    senders = await (await fresh(state, min_position)).legacy_pools(company_id)
    if not senders and await reads_of(state).wallet(company_id) is None:
        raise wallet_not_found(company_id)
    report = await asyncio.to_thread(
        migrate_pools, state.ledger, company_id, senders, actor=caller.subject,
        dry_run=body.dry_run,
    )  # fmt: skip
    return migration_out(report)


@router.get("/admin/pools/coverage", tags=["operator"])
async def coverage(
    state: State,
    caller: Operator,
    limit: Annotated[int, Query(ge=1, le=COVERAGE_LISTED_MAX)] = 100,
    min_position: MinPosition = None,
) -> PoolCoverageOut:
    """Per-sender pools still in use (a sender linked, or anything left in them), by company:
    empty once every company draws from a shared pool (scope billing.manage)."""
    rows = await (await fresh(state, min_position)).pool_coverage(limit)
    return PoolCoverageOut(remaining=[legacy_pool_out(r) for r in rows])


def migration_out(report: MigrationReport) -> PoolMigrationOut:
    return PoolMigrationOut(
        company_id=report.company_id,
        dry_run=report.dry_run,
        shared_wallet=report.shared_wallet,
        pools=[PoolMergeOut.model_validate(dict(p)) for p in report.pools],
        moved=format_amount(report.moved),
    )


def legacy_pool_out(row: Any) -> LegacyPoolOut:
    return LegacyPoolOut(
        company_id=row["company_id"], sender=row["pool_sender_id"], senders=row["senders"],
        currency=row["currency"], balance=format_amount(row["balance"]),
    )  # fmt: skip
