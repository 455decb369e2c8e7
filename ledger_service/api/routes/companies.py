"""A company's balance across all its pools, for clients that bill per company whether the
company has one shared pool or (legacy) one pool per sender.

The figures are summed by the read models within a time budget
(``LEDGER_AGGREGATE_READ_TIMEOUT_MS``): a read that takes longer is answered with the last
figures this process read for the company, marked ``stale``, and logged
(``aggregate_balance_timeout``); without any, it is 503.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import structlog
from fastapi import APIRouter

from ledger_service.api.errors import ApiError
from ledger_service.api.routes.dependencies import (
    Caller,
    CompanyPath,
    State,
    reads_of,
    see,
    wallet_not_found,
)
from ledger_service.domain.money import format_amount
from schemas.api import Buckets, CompanyBalanceOut

router = APIRouter()
log = structlog.get_logger(__name__)
LAST_KNOWN_MAX = 10_000
"""Companies whose last figures are kept for a stale answer (least recently read dropped)."""


class LastKnown:
    """The last figures read per company (bounded, least recently used dropped first)."""

    def __init__(self, size_max: int = LAST_KNOWN_MAX) -> None:
        self.size_max = size_max
        self._figures: OrderedDict[str, CompanyBalanceOut] = OrderedDict()

    def put(self, figures: CompanyBalanceOut) -> None:
        self._figures[figures.company_id] = figures
        self._figures.move_to_end(figures.company_id)
        while len(self._figures) > self.size_max:
            self._figures.popitem(last=False)

    def get(self, company_id: str) -> CompanyBalanceOut | None:
        return self._figures.get(company_id)


@router.get("/companies/{company_id}/balance", tags=["tenant", "operator"])
async def company_balance(
    company_id: CompanyPath, state: State, caller: Caller
) -> CompanyBalanceOut:
    """Every pool of the company summed bucket by bucket, with ``billing_model`` (scope
    billing.view, own company)."""
    see(caller, company_id)
    last_known: LastKnown = state.extras.setdefault("company_balances", LastKnown())
    try:
        rows = await asyncio.wait_for(
            reads_of(state).company_totals(company_id), state.aggregate_timeout_s
        )
    except TimeoutError:
        log.warning("aggregate_balance_timeout", company_id=company_id,
                    budget_s=state.aggregate_timeout_s)  # fmt: skip
        stale = last_known.get(company_id)
        if stale is None:
            raise ApiError(503, "UNAVAILABLE", "the balance read took too long; retry",
                           {"Retry-After": "1"}) from None  # fmt: skip
        return stale.model_copy(update={"stale": True})
    figures = _figures(company_id, rows)
    last_known.put(figures)
    return figures


def _figures(company_id: str, rows: list[Any]) -> CompanyBalanceOut:
    if not rows:
        raise wallet_not_found(company_id)
    if len(rows) > 1:
        currencies = ", ".join(sorted(r["currency"] for r in rows))
        raise ApiError(409, "MIXED_CURRENCIES", f"the pools of {company_id} are in {currencies}")
    row = rows[0]
    balance: Decimal = row["included"] + row["granted"] + row["prepaid"] - row["postpaid_used"]
    return CompanyBalanceOut(
        company_id=company_id,
        billing_model="shared" if row["shared"] else "per_sender",
        pools=row["pools"],
        currency=row["currency"],
        balance=format_amount(balance),
        available=format_amount(balance + row["postpaid_limit"] - row["held"]),
        postpaid_limit=format_amount(row["postpaid_limit"]),
        held=format_amount(row["held"]),
        buckets=Buckets(
            included=format_amount(row["included"]),
            grants=format_amount(row["granted"]),
            prepaid=format_amount(row["prepaid"]),
            postpaid_used=format_amount(row["postpaid_used"]),
        ),
        position=row["position"],
    )
