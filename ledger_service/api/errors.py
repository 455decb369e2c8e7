"""The one place where errors become HTTP responses.

Every error leaves as ``{"error": {"code", "message", "request_id"}}``. Domain errors keep their
``LedgerError.code``; statuses: 400 malformed requests, 401 missing/invalid credentials, 403 a
missing scope, 404 unknown (or another tenant's) resources, 409 invalid transitions, conflicts
and refusals that depend on the ledger's state or the clock, 422 values the schema refuses or
that could never be accepted as written, 503 a read that could not be served
fresh enough. Anything unexpected is a 500 with the request id to quote, and is logged.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import psycopg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from ledger_service.api.context import current_request_id
from ledger_service.domain.errors import (
    ConcurrencyConflict,
    CurrencyMismatch,
    GrantAlreadyExists,
    HoldConflict,
    IdempotencyConflict,
    InsufficientAvailableBalance,
    InsufficientFunds,
    InvalidAmount,
    InvalidArgument,
    InvalidTransition,
    LedgerError,
    LoginLinkUsed,
    NotFound,
    NotInFuture,
    NotPermitted,
    PackAlreadyExists,
    PaymentProviderUnavailable,
    PriceMismatch,
    SenderAlreadyLinked,
    SenderNotLinked,
    SpendingCapReached,
    TransferLimitReached,
    UnknownCategory,
    UnknownCompany,
    UsageAlreadyRefunded,
    UsageNotRefundable,
    WalletAlreadyExists,
)
from schemas.api import INVALID_AMOUNT, ErrorBody

log = structlog.get_logger(__name__)

_STATUS_OF: tuple[tuple[type[LedgerError], int], ...] = (
    (NotFound, 404),
    (UnknownCompany, 404),
    (NotPermitted, 403),
    (InvalidAmount, 422),
    (InvalidArgument, 422),
    # Refusals that depend on the ledger's state (the wallet's currency and rate card, a
    # pack's price, the clock), not on the request alone: a request the schema allows is
    # refused with 422 only when it could never succeed as written.
    (CurrencyMismatch, 409),
    (UnknownCategory, 409),
    (PriceMismatch, 409),
    (NotInFuture, 409),
    (InvalidTransition, 409),
    (InsufficientFunds, 409),
    (TransferLimitReached, 409),
    (WalletAlreadyExists, 409),
    (SenderAlreadyLinked, 409),
    (SenderNotLinked, 409),
    (UsageAlreadyRefunded, 409),
    (GrantAlreadyExists, 409),
    (PackAlreadyExists, 409),
    (HoldConflict, 409),
    (InsufficientAvailableBalance, 409),
    (SpendingCapReached, 409),
    (UsageNotRefundable, 409),
    (IdempotencyConflict, 409),
    (LoginLinkUsed, 409),
    (ConcurrencyConflict, 409),
    (PaymentProviderUnavailable, 503),
)
_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    """An error the API raises itself (auth, idempotency header, freshness)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def status_of(error: LedgerError) -> int:
    for kind, status in _STATUS_OF:
        if isinstance(error, kind):
            return status
    return 400


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "request_id": current_request_id()}}
    if status >= 500:
        log.error("http_error", status=status, code=code, message=message)
    elif status not in (404,):
        log.info("http_rejected", status=status, code=code, message=message)
    return JSONResponse(status_code=status, content=body, headers=headers)


def _validation_code(errors: list[Any]) -> tuple[int, str]:
    types = {e.get("type") for e in errors}
    if all(_missing_idempotency_key(e) for e in errors):
        return 400, "IDEMPOTENCY_KEY_REQUIRED"
    if "json_invalid" in types:
        return 400, "MALFORMED_JSON"
    if INVALID_AMOUNT in types:
        return 422, "INVALID_AMOUNT"
    return 422, "VALIDATION_ERROR"


def _missing_idempotency_key(error: Any) -> bool:
    """The required ``Idempotency-Key`` header absent or empty (a money API does not guess
    whether a retry is a new request)."""
    return tuple(error.get("loc", ()))[:2] == ("header", "Idempotency-Key") and error.get(
        "type"
    ) in ("missing", "string_too_short")


def _describe(errors: list[Any]) -> str:
    parts = []
    for error in errors[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{location}: {error.get('msg')}" if location else str(error.get("msg")))
    return "; ".join(parts)


def validation_error(errors: list[Any]) -> tuple[int, str, str]:
    """A request model's validation errors as (status, code, message), as the API answers."""
    status, code = _validation_code(errors)
    return status, code, _describe(errors)


async def _on_ledger_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LedgerError)
    return error_response(status_of(exc), exc.code, exc.message)


async def _on_api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _on_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    status, code = _validation_code(errors)
    return error_response(status, code, _describe(errors))


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        headers = (headers or {}) | {"Allow": _allowed_methods(request)}
    return error_response(exc.status_code, code, str(exc.detail), headers)


def _allowed_methods(request: Request) -> str:
    """Every method the schema documents for the request's path. Starlette's own ``Allow``
    names only the first route whose path matched, so a path served by two routes (GET and
    POST declared apart) would seem to allow one of them."""
    app = request.app
    paths = getattr(app.state, "allow_by_path", None)
    if paths is None:
        paths = [
            (compile_path(path)[0], {m.upper() for m in item if m != "parameters"})
            for path, item in app.openapi().get("paths", {}).items()
        ]
        app.state.allow_by_path = paths
    methods: set[str] = set()
    for regex, documented in paths:
        if regex.match(request.url.path):
            methods |= documented
    return ", ".join(sorted(methods))


# What a database that is down, restarting or out of connections raises, on the write side
# (psycopg, under the library's and the runner's wrappers) and on the read side (asyncpg).
_OUTAGES: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,  # connection refused or lost, pool timeout
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.InterfaceError,  # a pooled connection closed under it
    ConnectionError,
)
RETRY_AFTER_S = "1"


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the database cannot be reached: the request was
    fine and may be retried with the same Idempotency-Key. A query the database refused (bad
    data, a bug) is not one, even wrapped in ``StoreUnavailable``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _OUTAGES):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    if is_outage(exc):
        log.warning("store_unavailable", error=repr(exc))
        return error_response(503, "UNAVAILABLE", "the ledger's database is unavailable; retry "
                              "shortly with the same Idempotency-Key",
                              {"Retry-After": RETRY_AFTER_S})  # fmt: skip
    log.exception("unhandled_error", error=repr(exc))
    return error_response(500, "INTERNAL_ERROR", "unexpected error; quote the request id")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LedgerError, _on_ledger_error)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "malformed request or missing Idempotency-Key"),
        (401, "missing, invalid or expired bearer token"),
        (403, "the token lacks the scope"),
        (404, "unknown resource, or another company's"),
        (
            409,
            "invalid transition or conflict, or a min_position the store has not reached "
            "(UNKNOWN_POSITION)",
        ),
        (413, "the request body is over LEDGER_HTTP_BODY_MAX_BYTES (PAYLOAD_TOO_LARGE)"),
        (422, "invalid value (e.g. INVALID_AMOUNT)"),
        (
            503,
            "the read models have not reached min_position yet (PROJECTION_BEHIND, "
            "Retry-After), or the database is unavailable (UNAVAILABLE, Retry-After): retry "
            "with the same Idempotency-Key",
        ),
    )
}
