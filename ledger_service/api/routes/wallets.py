"""Wallets: the balance read, pre-send authorization, opening and configuring, senders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query

from ledger_service.api.auth import Principal
from ledger_service.api.authorization import authorize, blocked_today
from ledger_service.api.routes.auto_open import open_on_first_use
from ledger_service.api.routes.dependencies import (
    ApiState,
    Caller,
    CompanyPath,
    IdempotencyKey,
    MinPosition,
    Operator,
    State,
    fresh,
    key,
    see,
    wallet_not_found,
    write,
)
from ledger_service.api.routes.grants import active_grants
from ledger_service.domain.money import format_amount
from ledger_service.service.wallets import UnlinkSender
from projections.handlers.policies import read_policies
from schemas.api import (
    KEY_PATTERN,
    AuthorizationOut,
    Buckets,
    CycleOut,
    SenderWriteOut,
    WalletOut,
    WalletWriteOut,
)
from schemas.requests import ConfigureWalletIn, OpenWalletIn, SenderIn

router = APIRouter()


async def _opened_wallet(state: ApiState, caller: Principal, company_id: str) -> Any:
    """The wallet's row after opening it on first use (None: not opened)."""
    position = await open_on_first_use(state, caller, company_id)
    if position is None:
        return None
    return await (await fresh(state, position)).wallet(company_id, None)


@router.get("/wallets/{company_id}", tags=["tenant"])
async def get_wallet(
    company_id: CompanyPath,
    state: State,
    caller: Caller,
    min_position: MinPosition = None,
    pool_sender_id: Annotated[str | None, Query(pattern=KEY_PATTERN)] = None,
) -> WalletOut:
    """The company's pool: balance, available, buckets (scope billing.view, own company)."""
    see(caller, company_id)
    row = await (await fresh(state, min_position)).wallet(company_id, pool_sender_id)
    if row is None and pool_sender_id is None:
        row = await _opened_wallet(state, caller, company_id)
    if row is None:
        raise wallet_not_found(company_id)
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
            grants=format_amount(row["granted"]),
            prepaid=format_amount(row["prepaid"]),
            postpaid_used=format_amount(row["postpaid_used"]),
        ),
        grants=active_grants(row["company_id"], row["grants"]),
        held=format_amount(row["held"]),
        senders=row["senders"],
        policies=read_policies(row["policies"]),
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
    see(caller, company_id)
    reads = await fresh(state, min_position)
    row = await reads.wallet_of_sender(company_id, waba_id)
    if row is None and not await reads.wallet_exists(company_id):
        raise wallet_not_found(company_id)
    return authorize(
        row,
        company_id=company_id,
        waba_id=waba_id,
        category=category,
        units=units,
        now=datetime.now(UTC),
    )


@router.post("/wallets", status_code=201, tags=["operator"])
async def open_wallet(
    body: OpenWalletIn, state: State, caller: Operator, idempotency_key: IdempotencyKey
) -> WalletWriteOut:
    """Open a company's wallet (scope billing.manage)."""
    command = body.to_command(actor=caller.subject, idempotency_key=key(idempotency_key))
    result = await write(state, command)
    return WalletWriteOut(
        company_id=body.company_id, wallet_id=UUID(result["wallet_id"]), position=result["position"]
    )


@router.patch("/wallets/{company_id}", tags=["operator"])
async def configure_wallet(
    company_id: CompanyPath,
    body: ConfigureWalletIn,
    state: State,
    caller: Operator,
    idempotency_key: IdempotencyKey,
) -> WalletWriteOut:
    """Change limits, quota, rate card, alert thresholds, spending caps, auto top-up and the
    billing-cycle anchor (scope billing.manage). Every change is an event."""
    idempotency = key(idempotency_key)
    command = body.to_command(company_id, actor=caller.subject, idempotency_key=idempotency)
    result = await write(state, command)
    return WalletWriteOut(company_id=company_id, position=result["position"])


@router.post("/wallets/{company_id}/senders", status_code=201, tags=["operator"])
async def link_sender(
    company_id: CompanyPath,
    body: SenderIn,
    state: State,
    caller: Operator,
    idempotency_key: IdempotencyKey,
) -> SenderWriteOut:
    """Link a sender (WABA) to the company's pool (scope billing.manage)."""
    idempotency = key(idempotency_key)
    command = body.to_command(company_id, actor=caller.subject, idempotency_key=idempotency)
    result = await write(state, command)
    return SenderWriteOut(company_id=company_id, waba_id=body.waba_id, position=result["position"])


@router.delete("/wallets/{company_id}/senders/{waba_id}", tags=["operator"])
async def unlink_sender(
    company_id: CompanyPath,
    waba_id: Annotated[str, Path(pattern=KEY_PATTERN)],
    state: State,
    caller: Operator,
    idempotency_key: IdempotencyKey,
) -> SenderWriteOut:
    """Unlink a sender from the company's pool (scope billing.manage)."""
    command = UnlinkSender(
        company_id=company_id,
        waba_id=waba_id,
        actor=caller.subject,
        idempotency_key=key(idempotency_key),
    )
    result = await write(state, command)
    return SenderWriteOut(company_id=company_id, waba_id=waba_id, position=result["position"])
