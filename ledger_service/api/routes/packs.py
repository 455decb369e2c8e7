"""Top-up packs: operators define and retire them; everyone signed in lists them."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Query

from ledger_service.api.auth import require_view
from ledger_service.api.routes.dependencies import (
    Caller,
    IdempotencyKey,
    Operator,
    State,
    key,
    write,
)
from ledger_service.service.packs import RetirePack, pack_state
from schemas.api import KEY_PATTERN, PackOut
from schemas.requests import PackIn

router = APIRouter()
CurrencyPath = Annotated[str, Path(pattern=r"^[A-Z]{3}$")]


@router.post("/packs", status_code=201, tags=["operator"])
async def define_pack(
    body: PackIn, state: State, caller: Operator, idempotency_key: IdempotencyKey
) -> PackOut:
    """Offer a pack: ``amount`` of ``currency`` with ``bonus`` credit on top (scope
    billing.manage). A name is unique per currency while the pack is offered."""
    command = body.to_command(actor=caller.subject, idempotency_key=key(idempotency_key))
    return PackOut.model_validate(await write(state, command))


@router.get("/packs", tags=["tenant", "operator"])
async def list_packs(
    state: State,
    caller: Caller,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
) -> list[PackOut]:
    """The packs on offer, by currency then amount (scope billing.view)."""
    require_view(caller)
    catalog = await asyncio.to_thread(state.ledger.packs)
    return [PackOut.model_validate(pack_state(p)) for p in catalog.offered(currency)]


@router.delete("/packs/{currency}/{name}", tags=["operator"])
async def retire_pack(
    currency: CurrencyPath,
    name: Annotated[str, Path(pattern=KEY_PATTERN)],
    state: State,
    caller: Operator,
    idempotency_key: IdempotencyKey,
) -> PackOut:
    """Stop offering a pack; requests that named it keep their bonus (scope billing.manage)."""
    command = RetirePack(
        pack_name=name, currency=currency, actor=caller.subject,
        idempotency_key=key(idempotency_key),
    )  # fmt: skip
    return PackOut.model_validate(await write(state, command))
