"""Operators read the newest dead letters (code, reason, company, event id) and replay one, or
every letter of a code, once its cause is fixed. A replay is safe to repeat: usage keys apply
each event at most once, and a letter still bad is dead-lettered again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ledger_service.console.web import (
    OperatorViewer,
    PageError,
    checked_form,
    console_of,
    redirect,
    render,
)
from ledger_service.ingestion.dlq import DeadLetterDesk

router = APIRouter()
LETTERS_MAX = 100
Code = Annotated[str | None, Query(pattern=r"^([A-Z0-9_]{1,64})?$")]


def _desk(request: Request) -> DeadLetterDesk:
    desk = console_of(request).dead_letters
    if desk is None:
        raise PageError(
            503, "BROKER_NOT_CONFIGURED", "this process does not talk to the broker (ledger run)"
        )
    return desk


def _unreachable() -> PageError:
    return PageError(503, "BROKER_UNAVAILABLE", "the broker did not answer in time; retry")


@router.get("/ops/dead-letters")
async def dead_letters_page(
    request: Request, session: OperatorViewer, code: Code = None
) -> HTMLResponse:
    try:
        letters = await _desk(request).newest(code=code or None, limit=LETTERS_MAX)
    except (TimeoutError, OSError):
        raise _unreachable() from None
    codes = sorted({letter.code for letter in letters})
    return render(
        request, "ops_dead_letters.html", session, letters=letters, code=code or "",
        codes=codes, limit=LETTERS_MAX,
    )  # fmt: skip


@router.post("/ops/dead-letters/{partition}/{offset}/replay")
async def replay_one(
    request: Request,
    partition: Annotated[int, Path(ge=0, le=100_000)],
    offset: Annotated[int, Path(ge=0, le=2**62)],
    session: OperatorViewer,
) -> RedirectResponse:
    await checked_form(request, session)
    try:
        await _desk(request).replay_one(partition, offset)
    except LookupError as exc:
        raise PageError(404, "DEAD_LETTER_NOT_FOUND", str(exc)) from None
    except (TimeoutError, OSError):
        raise _unreachable() from None
    return redirect("/ops/dead-letters", notice="replayed")


@router.post("/ops/dead-letters/replay")
async def replay_code(request: Request, session: OperatorViewer) -> RedirectResponse:
    fields = await checked_form(request, session)
    code = fields.get("code", "")
    if not code or len(code) > 64:
        raise PageError(422, "VALIDATION_ERROR", "choose the code whose letters to replay")
    try:
        await _desk(request).replay_code(code)
    except (TimeoutError, OSError):
        raise _unreachable() from None
    return redirect("/ops/dead-letters", notice="replayed")
