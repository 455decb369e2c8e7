"""Credit grants of a wallet: issue and void (scope billing.manage), list the active ones.

A grant is drained by usage after the included quota and before prepaid money; at its
``expires_at`` the cycle scheduler expires the remainder. One grant per ``reference``: issuing
the same reference again is 409 ``GRANT_ALREADY_EXISTS``; voiding a closed grant is 409
``GRANT_CLOSED``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from fastapi import APIRouter

from ledger_service.api.routes.dependencies import (
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
from ledger_service.domain.grants import GrantStatus
from ledger_service.service.grants import GrantState, VoidGrant
from schemas.api import GrantOut
from schemas.requests import GrantIn

router = APIRouter()


def grant_out(state: Mapping[str, Any], company_id: str) -> GrantOut:
    """A grant as the command answered, or as the wallet row's JSON holds an active one."""
    return GrantOut.model_validate(
        {
            "id": state["grant_id"],
            "company_id": company_id,
            "status": state.get("status", GrantStatus.ACTIVE.value),
            **{f: state[f] for f in _GRANT_FIELDS},
            "position": state.get("position"),
        }
    )


_GRANT_FIELDS = (
    "amount", "remaining", "priority", "expires_at", "granted_at", "reason", "reference",
    "granted_by",
)  # fmt: skip


def active_grants(company_id: str, grants_json: str) -> list[GrantOut]:
    """The wallet row's active grants, in the order usage drains them."""
    grants = [grant_out(g, company_id) for g in json.loads(grants_json).values()]
    never = "9999-12-31T23:59:59+00:00"
    return sorted(
        grants,
        key=lambda g: (
            g.priority,
            g.expires_at.isoformat() if g.expires_at else never,
            g.granted_at,
            str(g.id),
        ),
    )


@router.post("/wallets/{company_id}/grants", status_code=201, tags=["operator"])
async def issue_grant(
    company_id: CompanyPath,
    body: GrantIn,
    state: State,
    caller: Operator,
    idempotency_key: IdempotencyKey,
) -> GrantOut:
    """Give the wallet promotional or goodwill credit, drained by usage after the included
    quota (lower ``priority`` first, then soonest expiry, then oldest) and expiring unused at
    ``expires_at``."""
    idempotency = key(idempotency_key)
    command = body.to_command(company_id, actor=caller.subject, idempotency_key=idempotency)
    written: GrantState = await write(state, command)
    return grant_out(written, company_id)


@router.get("/wallets/{company_id}/grants", tags=["tenant"])
async def list_grants(
    company_id: CompanyPath, state: State, caller: Caller, min_position: MinPosition = None
) -> list[GrantOut]:
    """The active grants with what is left of them, in drain order (scope billing.view)."""
    see(caller, company_id)
    row = await (await fresh(state, min_position)).wallet(company_id, None)
    if row is None:
        raise wallet_not_found(company_id)
    return active_grants(company_id, row["grants"])


@router.delete("/wallets/{company_id}/grants/{grant_id}", tags=["operator"])
async def void_grant(
    company_id: CompanyPath,
    grant_id: UUID,
    state: State,
    caller: Operator,
    idempotency_key: IdempotencyKey,
) -> GrantOut:
    """Void an active grant now: its remainder is taken back (an ``expiry`` entry)."""
    command = VoidGrant(
        company_id=company_id,
        grant_id=grant_id,
        actor=caller.subject,
        idempotency_key=key(idempotency_key),
    )
    written: GrantState = await write(state, command)
    return grant_out(written, company_id)
