"""Synchronous consumption: a feature that is not a message (an AI summary, an export) charged
when it is used (scope ``billing.usage``, or ``billing.manage``). See ``domain.consumption``.

Refused (409, nothing written) with ``INSUFFICIENT_AVAILABLE_BALANCE`` when the available balance
(holds deducted) does not cover the price, ``SPENDING_CAP_REACHED`` when the feature's cap is
``hard`` and this would pass it, ``UNKNOWN_CATEGORY`` for a feature not on the rate card.
The ``reference`` is the idempotency key (no ``Idempotency-Key`` header): the same reference and
body again returns the first charge, another body for it is 409 ``IDEMPOTENCY_CONFLICT``.
"""

from __future__ import annotations

from fastapi import APIRouter

from ledger_service.api.routes.dependencies import CompanyPath, Sender, State, may_spend, write
from schemas.api import ConsumptionOut
from schemas.requests import ConsumeIn

router = APIRouter()


@router.post("/wallets/{company_id}/consume", status_code=201, tags=["sender"])
async def consume(
    company_id: CompanyPath, body: ConsumeIn, state: State, caller: Sender
) -> ConsumptionOut:
    """Charge ``units`` of ``feature`` at the rate-card price, now, or refuse."""
    may_spend(caller, company_id)
    charged = await write(state, body.to_command(company_id, actor=caller.subject))
    return ConsumptionOut.model_validate(charged)
