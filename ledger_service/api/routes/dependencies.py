"""What every ``/v1`` route shares: the API state, the caller and its scope, request parameters
with their limits, bounded read-your-writes waits, idempotency keys and the write helper."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, Header, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BeforeValidator

from ledger_service.api.auth import (
    Authenticator,
    Principal,
    require_manage,
    require_usage,
    require_view,
)
from ledger_service.api.context import bind_company
from ledger_service.api.errors import ApiError
from ledger_service.domain.money import format_amount
from ledger_service.service.hold_batcher import HoldBatcher
from ledger_service.service.ledger import LedgerApplication
from ledger_service.service.runner import Command
from projections.queries import ReadModels
from schemas.api import KEY_PATTERN

if TYPE_CHECKING:
    from ledger_service.api.routes.auto_open import WalletDefaults

R = TypeVar("R")
PAGE_SIZE_MAX = 500


@dataclass
class ApiState:
    """What the routes need; ``reads`` is set by the app's lifespan (an asyncpg pool)."""

    ledger: LedgerApplication
    authenticate: Authenticator
    read_wait_timeout_s: float = 2.0
    reads: ReadModels | None = None
    holds: HoldBatcher | None = None
    """Commits hold requests in groups, while the app runs (None: one save per hold)."""
    wallet_defaults: WalletDefaults | None = None
    """Set: a tenant's first use of its company opens the wallet (``auto_open``)."""
    aggregate_timeout_s: float = 0.5
    """Time budget of a read that sums several pools (a company's balance)."""
    webhook_secrets: dict[str, str] = field(default_factory=dict)
    """Payment provider -> the secret its webhooks are signed with."""
    extras: dict[str, Any] = field(default_factory=dict)


_bearer = HTTPBearer(auto_error=False, description="JWT (HS256) with sub, company_id, scopes")


def state_of(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


async def api_state(request: Request) -> ApiState:
    """``state_of`` as a dependency: ``async`` because FastAPI runs a plain function in a
    worker thread, a hop that cost more than the rest of the dependency resolution."""
    return state_of(request)


def reads_of(state: ApiState) -> ReadModels:
    if state.reads is None:
        raise ApiError(503, "UNAVAILABLE", "the read-model pool is not open")
    return state.reads


async def principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    caller = state_of(request).authenticate(request.headers.get("authorization"))
    bind_company(caller.company_id)
    return caller


async def operator(caller: Annotated[Principal, Depends(principal)]) -> Principal:
    """The caller, provided it holds the operator scope (``billing.manage``)."""
    require_manage(caller)
    return caller


async def sender(caller: Annotated[Principal, Depends(principal)]) -> Principal:
    """The caller, provided it may spend: place holds, consume (``billing.usage`` or
    ``billing.manage``)."""
    require_usage(caller)
    return caller


def may_spend(caller: Principal, company_id: str) -> None:
    """A sender token bound to one company sees no other (as a tenant does not)."""
    if not caller.can_spend(company_id):
        raise wallet_not_found(company_id)


State = Annotated[ApiState, Depends(api_state)]
Caller = Annotated[Principal, Depends(principal)]
Operator = Annotated[Principal, Depends(operator)]
Sender = Annotated[Principal, Depends(sender)]
CompanyPath = Annotated[str, Path(pattern=KEY_PATTERN, description="company id")]
MinPosition = Annotated[
    int | None,
    Query(ge=0, le=2**62, description="wait (bounded) until read models include this position"),
]
IDEMPOTENCY_KEY_RULES = (
    "required on writes: 1-200 characters, unique per company; a retry with the same key and "
    "body returns the original status and body and writes nothing, the same key with another "
    "body is 409 IDEMPOTENCY_CONFLICT; missing or empty, 400 IDEMPOTENCY_KEY_REQUIRED"
)
IdempotencyKey = Annotated[
    str,
    Header(alias="Idempotency-Key", min_length=1, max_length=200,
           description=IDEMPOTENCY_KEY_RULES),
]  # fmt: skip
OptionalIdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="optional here: the request's own reference keys it when absent",
    ),
]
# Pydantic would also read a bare number as seconds since 1970; the API takes only what its
# schema says (RFC 3339 date-times with an offset, ISO dates), so a typo is refused, not read.
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
                      r"([Zz]|[+-][0-9]{2}:[0-9]{2})")  # fmt: skip
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _shaped(pattern: re.Pattern[str], example: str) -> BeforeValidator:
    def check(value: object) -> object:
        if isinstance(value, str) and not pattern.fullmatch(value):
            raise ValueError(f"expected a value like {example}")
        return value

    return BeforeValidator(check)


Since = Annotated[
    AwareDatetime | None,
    _shaped(_RFC3339, "2026-11-01T00:00:00Z"),
    Query(alias="from", description="RFC 3339 date-time with offset, inclusive"),
]
Until = Annotated[
    AwareDatetime | None,
    _shaped(_RFC3339, "2026-12-01T00:00:00Z"),
    Query(description="RFC 3339 date-time with offset, exclusive"),
]
FirstDay = Annotated[
    date | None,
    _shaped(_ISO_DATE, "2026-11-01"),
    Query(alias="from", description="first day (UTC), YYYY-MM-DD"),
]
LastDay = Annotated[
    date | None,
    _shaped(_ISO_DATE, "2026-11-30"),
    Query(description="last day (UTC), YYYY-MM-DD, inclusive"),
]
Cursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description="next_cursor")]
Limit = Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)]


def amount_text(value: Decimal | None) -> str | None:
    return None if value is None else format_amount(value)


def wallet_not_found(company_id: str) -> ApiError:
    return ApiError(404, "WALLET_NOT_FOUND", f"no wallet for company {company_id}")


def see(caller: Principal, company_id: str) -> None:
    """Tenants see their own company only; another company looks like no company at all."""
    require_view(caller)
    if not caller.can_see(company_id):
        raise wallet_not_found(company_id)


async def fresh(state: ApiState, min_position: int | None) -> ReadModels:
    """The read models, once they include ``min_position`` (bounded wait: then 503). A
    position beyond the event store's head was never answered by a write: 409 (the store is
    not there), at once, not a wait."""
    reads = reads_of(state)
    if min_position and await reads.position() < min_position:
        head = await asyncio.to_thread(state.ledger.recorder.max_notification_id) or 0
        if min_position > head:
            raise ApiError(
                409,
                "UNKNOWN_POSITION",
                f"position {min_position} is beyond the event store's head ({head}): "
                "pass the position a write answered",
            )
    if min_position and not await reads.wait_for(min_position, state.read_wait_timeout_s):
        raise ApiError(
            503,
            "PROJECTION_BEHIND",
            f"read models have not reached position {min_position} yet; retry shortly",
            {"Retry-After": "1"},
        )
    return reads


def key(idempotency_key: str | None) -> str:
    if not idempotency_key:
        raise ApiError(400, "IDEMPOTENCY_KEY_REQUIRED", "writes need an Idempotency-Key header")
    return idempotency_key


async def write(state: ApiState, command: Command[R]) -> R:
    """Run a command in a worker thread (eventsourcing is synchronous)."""
    return await asyncio.to_thread(state.ledger.handle, command)


def page(rows: list[Any], limit: int, column: str) -> tuple[list[Any], str | None]:
    """Rows were fetched with ``limit + 1``: a cursor only when there really is a next page."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, str(rows[-1][column])
