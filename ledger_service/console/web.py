"""What every console page shares: the signed-in viewer, rendering, CSRF-checked forms, running
the API's commands, and errors as pages (the API's code and message, with the request id)."""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from ledger_service.api.context import current_request_id
from ledger_service.api.errors import ApiError, status_of, validation_error
from ledger_service.api.routes.dependencies import ApiState, fresh
from ledger_service.console.sign_in import ConsoleSigner, Session
from ledger_service.domain.errors import LedgerError
from ledger_service.ingestion.dlq import DeadLetterDesk
from ledger_service.service.runner import Command, StoreUnavailable
from projections.queries import ReadModels
from schemas.api import KEY_PATTERN

R = TypeVar("R")
SESSION_COOKIE = "ledger_console_session"
CSRF_FIELD = "csrf_token"
NO_STORE = {"Cache-Control": "no-store"}
"""Pages show balances, invoices and CSRF tokens: no cache keeps them past a sign-out."""


@dataclass
class Console:
    api: ApiState
    signer: ConsoleSigner
    templates: Jinja2Templates
    cookie_secure: bool
    dead_letters: DeadLetterDesk | None = None
    """The dead-letter topic, when this process knows the broker (``ledger run``)."""


class PageError(Exception):
    """Shown as an error page with ``status``; ``code`` is the API's error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class NotSignedIn(Exception):
    """No valid session cookie: the page explains how to sign in."""


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


async def signed_in(request: Request) -> Session:
    session = console_of(request).signer.read_session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise NotSignedIn
    return session


async def operator(session: Annotated[Session, Depends(signed_in)]) -> Session:
    """Operators only; to anyone else an operator page does not exist (as in the API)."""
    if not session.principal.is_operator:
        raise PageError(404, "NOT_FOUND", "there is no such page")
    return session


Company = Annotated[str, Path(pattern=KEY_PATTERN, description="company id")]
Cursor = Annotated[int | None, Query(ge=1, le=2**62, description="next page's cursor")]
Viewer = Annotated[Session, Depends(signed_in)]
OperatorViewer = Annotated[Session, Depends(operator)]


def check_company(session: Session, company_id: str) -> None:
    """Another company's pages look like no company at all (404), as in the API."""
    if not session.principal.can_see(company_id):
        raise PageError(404, "WALLET_NOT_FOUND", f"no wallet for company {company_id}")


async def reads(request: Request, min_position: int | None = None) -> ReadModels:
    """The read models, after waiting (bounded) for the position a form's write reached."""
    try:
        return await fresh(console_of(request).api, min_position)
    except ApiError as exc:
        raise PageError(exc.status, exc.code, exc.message) from None


async def checked_form(request: Request, session: Session) -> dict[str, str]:
    """The posted form, provided it carries this session's CSRF token."""
    form = await request.form()
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    if not console_of(request).signer.csrf_valid(session, fields.get(CSRF_FIELD)):
        raise PageError(
            403, "CSRF_TOKEN_INVALID", "the form's security token is missing or stale; reload"
        )
    return fields


def company_filter(fields: dict[str, str]) -> str | None:
    """The queue's company filter a form carries back, when it is a valid company id."""
    company = fields.get("company", "")
    return company if re.fullmatch(KEY_PATTERN, company) else None


def form_key(fields: dict[str, str]) -> str:
    """The form's idempotency key, rendered into it: a double submit changes nothing twice."""
    key = fields.get("idempotency_key", "")
    if not 1 <= len(key) <= 200:
        raise PageError(400, "IDEMPOTENCY_KEY_REQUIRED", "the form lacks its idempotency key")
    return key


def parsed(model: type[R], **values: Any) -> R:
    """A request model of the API built from form fields, with the API's validation."""
    try:
        return model(**values)
    except ValidationError as exc:
        status, code, message = validation_error(list(exc.errors()))
        raise PageError(status, code, message) from None


async def run(request: Request, command: Command[R]) -> R:
    """Run one of the API's commands; its refusals become error pages with the same codes."""
    try:
        return await asyncio.to_thread(console_of(request).api.ledger.handle, command)
    except LedgerError as exc:
        raise PageError(status_of(exc), exc.code, exc.message) from None
    except StoreUnavailable:
        raise PageError(503, "UNAVAILABLE", "the ledger is unavailable; retry shortly") from None


def redirect(path: str, **query: object) -> RedirectResponse:
    params = {k: v for k, v in query.items() if v is not None}
    url = f"/console{path}" + (f"?{urlencode(params)}" if params else "")
    return RedirectResponse(url, status_code=303)


def render(
    request: Request,
    template: str,
    session: Session | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    console = console_of(request)
    return console.templates.TemplateResponse(
        request,
        template,
        {
            "session": session,
            "csrf_token": None if session is None else console.signer.csrf_token(session),
            "new_key": lambda: secrets.token_urlsafe(16),
            "request_id": current_request_id(),
            **context,
        },
        status_code=status_code,
        headers=NO_STORE,
    )
