"""A company's history in the console: transactions (filters, pages, CSV of the filtered range)
and the alerts raised for it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from ledger_service.console.pages import entry_view
from ledger_service.console.web import (
    NO_STORE,
    Company,
    Cursor,
    PageError,
    Viewer,
    check_company,
    reads,
    render,
)
from ledger_service.domain.entries import CreditKind, DebitKind
from projections.queries import ReadModels
from schemas.api import KEY_PATTERN

router = APIRouter()
PAGE_SIZE = 50
CSV_ROWS_MAX = 100_000
"""A download is bounded: a wider range is refused with a message to narrow it."""
CSV_BATCH = 1000
FORMULA_STARTS = frozenset("=+-@\t\r")
KINDS = sorted({*CreditKind, *DebitKind})
Key = Annotated[str | None, Query(pattern=f"(^$)|({KEY_PATTERN})")]
DAY_PATTERN = r"^(\d{4}-\d{2}-\d{2})?$"
"""A date field of a GET form, YYYY-MM-DD: the browser sends it empty when not filled in."""
Day = Annotated[str | None, Query(pattern=DAY_PATTERN)]
From = Annotated[str | None, Query(alias="from", pattern=DAY_PATTERN)]
CSV_COLUMNS = (
    "position", "occurred_at", "direction", "kind", "amount", "currency", "balance_after",
    "sender_id", "category", "units", "unit_price", "reference", "counter_account", "actor",
)  # fmt: skip


class Filters:
    """The page's filters; days are whole UTC days, ``to`` inclusive."""

    def __init__(self, kind: str | None, sender: str | None, start: date | None, end: date | None):
        self.kind, self.sender, self.start, self.end = kind or None, sender or None, start, end

    @property
    def since(self) -> datetime | None:
        return None if self.start is None else datetime.combine(self.start, time(), UTC)

    @property
    def until(self) -> datetime | None:
        return None if self.end is None else datetime.combine(self.end, time(), UTC) + timedelta(1)

    def query(self) -> dict[str, str]:
        values = {"kind": self.kind, "sender": self.sender, "from": self.start, "to": self.end}
        return {k: str(v) for k, v in values.items() if v is not None}

    async def entries(
        self, models: ReadModels, company_id: str, before: int | None, limit: int
    ) -> list[Any]:
        return await models.entries(
            company_id, kind=self.kind, sender=self.sender, since=self.since, until=self.until,
            before_position=before, limit=limit,
        )  # fmt: skip


async def chosen_filters(
    kind: Key = None, sender: Key = None, from_: From = None, to: Day = None
) -> Filters:
    """The transactions filters of a page or its CSV (a dependency: one parameter list)."""
    return Filters(kind, sender, _day(from_, "from"), _day(to, "to"))


Chosen = Annotated[Filters, Depends(chosen_filters)]


@router.get("/companies/{company_id}/transactions")
async def transactions_page(
    request: Request,
    company_id: Company,
    session: Viewer,
    chosen: Chosen,
    cursor: Cursor = None,
) -> HTMLResponse:
    check_company(session, company_id)
    models = await reads(request)
    wallet = await models.wallet(company_id, None)
    rows = await chosen.entries(models, company_id, cursor, PAGE_SIZE + 1)
    return render(
        request,
        "transactions.html",
        session,
        company_id=company_id,
        currency=None if wallet is None else wallet["currency"],
        filters=chosen,
        kinds=KINDS,
        entries=[entry_view(r) for r in rows[:PAGE_SIZE]],
        next_cursor=rows[PAGE_SIZE - 1]["position"] if len(rows) > PAGE_SIZE else None,
    )


@router.get("/companies/{company_id}/transactions.csv")
async def transactions_csv(
    request: Request, company_id: Company, session: Viewer, chosen: Chosen
) -> StreamingResponse:
    """Every entry of the filtered range, newest first, fetched and written in batches."""
    check_company(session, company_id)
    models = await reads(request)
    wallet = await models.wallet(company_id, None)
    currency = "" if wallet is None else wallet["currency"]

    # The first batch before the response starts: a failing read is an error page, not a
    # download that looks complete.
    first = await chosen.entries(models, company_id, None, CSV_BATCH)

    async def lines() -> AsyncIterator[str]:
        yield _csv_line(CSV_COLUMNS)
        rows, written = first, 0
        while rows:
            for row in rows[: CSV_ROWS_MAX - written]:
                yield _csv_line(entry_view(row).csv_values(currency))
            written += len(rows)
            if len(rows) < CSV_BATCH:
                return
            before = rows[-1]["position"]
            if written >= CSV_ROWS_MAX:
                if await chosen.entries(models, company_id, before, 1):
                    yield _csv_line([f"# stopped after {CSV_ROWS_MAX} rows: narrow the range"])
                return
            rows = await chosen.entries(models, company_id, before, CSV_BATCH)

    name = f"{company_id}-transactions.csv"
    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', **NO_STORE},
    )


def _day(text: str | None, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise PageError(422, "VALIDATION_ERROR", f"{name}: {text} is not a date") from None


def _csv_line(values: Any) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_inert(value) for value in values])
    return buffer.getvalue()


def _inert(value: object) -> object:
    """Text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first)
    gets a leading apostrophe; numbers (``-1.5``) stay numbers."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS and not _is_number(value):
        return "'" + value
    return value


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True


@router.get("/companies/{company_id}/alerts")
async def alerts_page(
    request: Request, company_id: Company, session: Viewer, cursor: Cursor = None
) -> HTMLResponse:
    check_company(session, company_id)
    rows = await (await reads(request)).alerts(company_id, cursor, PAGE_SIZE)
    alerts = [
        {"position": r["position"], "alert": r["alert"], "occurred_at": r["occurred_at"],
         "detail": json.loads(r["detail"])}
        for r in rows[:PAGE_SIZE]
    ]  # fmt: skip
    return render(
        request,
        "alerts.html",
        session,
        company_id=company_id,
        alerts=alerts,
        next_cursor=rows[PAGE_SIZE - 1]["position"] if len(rows) > PAGE_SIZE else None,
    )
