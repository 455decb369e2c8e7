"""The console application, mounted by the composition root at ``/console`` of the API's app.

A sub-application of its own so that its errors are pages, not JSON, and so that it stays out
of the API's OpenAPI schema; it shares the API's state (ledger, read models, settings) and runs
inside the API's request-context middleware (request ids, metrics, logs).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger_service.api.errors import status_of, validation_error
from ledger_service.api.routes.dependencies import ApiState
from ledger_service.console import (
    dead_letter_pages,
    history_pages,
    operator_pages,
    sign_in_pages,
    tenant_pages,
    wallet_settings_pages,
)
from ledger_service.console.pages import money
from ledger_service.console.sign_in import ConsoleSigner
from ledger_service.console.web import (
    SESSION_COOKIE,
    Console,
    NotSignedIn,
    PageError,
    console_of,
    render,
)
from ledger_service.domain.errors import LedgerError
from ledger_service.ingestion.dlq import DeadLetterDesk

HERE = Path(__file__).parent
NOTICES = {
    "requested": "Top-up requested: an operator will review it.",
    "cancelled": "Top-up cancelled.",
    "approved": "Top-up approved: the invoice is issued.",
    "rejected": "Top-up rejected.",
    "released": "Released: a card top-up is invoiced, an invoice request awaits approval.",
    "paid": "Marked paid: the wallet is credited.",
    "saved": "Saved: the wallet's settings are changed.",
    "replayed": "Replayed: the usage topic has the letter again; applied once its cause is fixed.",
}


def create_console(
    api: ApiState,
    signer: ConsoleSigner,
    *,
    cookie_secure: bool,
    dead_letters: DeadLetterDesk | None = None,
) -> FastAPI:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals["notices"] = NOTICES
    templates.env.filters["money"] = money
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    console.state.console = Console(api, signer, templates, cookie_secure, dead_letters)
    console.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (
        sign_in_pages,
        tenant_pages,
        history_pages,
        operator_pages,
        wallet_settings_pages,
        dead_letter_pages,
    ):
        console.include_router(module.router)
    _error_pages(console)
    return console


def _error_pages(console: FastAPI) -> None:
    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return _error(request, exc.status, exc.code, exc.message)

    async def not_signed_in(request: Request, _: Exception) -> Response:
        return render(request, "signed_out.html", None, status_code=401)

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _error(request, *validation_error(list(exc.errors())))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = "NOT_FOUND" if exc.status_code == 404 else "HTTP_ERROR"
        return _error(request, exc.status_code, code, str(exc.detail))

    async def ledger_error(request: Request, exc: Exception) -> Response:
        # Raised while a form's values become a command (e.g. a zero amount), before run().
        assert isinstance(exc, LedgerError)
        return _error(request, status_of(exc), exc.code, exc.message)

    console.add_exception_handler(PageError, page_error)
    console.add_exception_handler(LedgerError, ledger_error)
    console.add_exception_handler(NotSignedIn, not_signed_in)
    console.add_exception_handler(RequestValidationError, invalid_request)
    console.add_exception_handler(StarletteHTTPException, http_error)


def _error(request: Request, status: int, code: str, message: str) -> HTMLResponse:
    session = console_of(request).signer.read_session(request.cookies.get(SESSION_COOKIE))
    return render(request, "error.html", session, status_code=status, code=code, message=message)
