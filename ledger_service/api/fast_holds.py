"""``POST /v1/wallets/{company_id}/holds`` on its fast path: one hold per message sent.

FastAPI's machinery (dependency resolution, body and response models) was more than half of a
hold request's CPU time, and a single API process saturated its core below the 2,000 holds/s the
upstream senders need (``make bench-holds``). This route answers the well-formed requests
itself, with the same steps as ``routes.holds.place_hold``: the bearer token, the
``billing.usage`` scope, the company, the ``HoldIn`` body, the idempotency key, the same command
and the same ``HoldOut`` body. Errors raised here (``ApiError``, ``LedgerError``) go through
the app's exception handlers, as the FastAPI route's do. A request it does not take as it is
(a company id or a body that does not validate) is handed to the FastAPI route with its body,
so every validation error is answered exactly as the OpenAPI schema describes; that route also
stays the schema's description of the operation. A test compares the two answers.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from pydantic import ValidationError
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger_service.api.auth import require_usage
from ledger_service.api.context import bind_company
from ledger_service.api.routes.dependencies import ApiState, may_spend, write
from ledger_service.api.routes.holds import router as holds_router
from ledger_service.service.holds import HoldState
from schemas.api import KEY_PATTERN, HoldOut
from schemas.requests import HoldIn

PATH = "/v1/wallets/{company_id}/holds"
DECLINED = "ledger.fast_holds_declined"
_COMPANY = re.compile(KEY_PATTERN)
_JSON = [(b"content-type", b"application/json")]


class FastHoldRoute(Route):
    """Matches the holds POST unless the request was handed back to the FastAPI route."""

    def __init__(self, state: ApiState, fallback: ASGIApp, template: Any) -> None:
        self.state, self.fallback, self.template = state, fallback, template
        self.declined = 0
        """Requests handed to the FastAPI route (they did not validate here)."""
        super().__init__(PATH, endpoint=self._serve, methods=["POST"], include_in_schema=False)
        self.app = self._serve  # a plain ASGI callable, not a request-response function

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get(DECLINED):
            return Match.NONE, {}
        return super().matches(scope)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self.template  # the metrics and logs name the FastAPI route
        body = await _read_body(receive)
        headers = dict(scope["headers"])
        company_id = scope["path_params"]["company_id"]
        caller = self.state.authenticate(_text(headers.get(b"authorization")))
        bind_company(caller.company_id)
        require_usage(caller)
        hold = _valid(company_id, body, headers)
        if hold is None:
            await self._decline(scope, body, send)
            return
        may_spend(caller, company_id)
        key = _text(headers.get(b"idempotency-key")) or f"hold:{hold.reference}"
        command = hold.to_command(company_id, actor=caller.subject, idempotency_key=key)
        if self.state.holds is not None:
            held: HoldState = await asyncio.wrap_future(self.state.holds.submit(command))
        else:
            held = await write(self.state, command)
        answer = HoldOut.model_validate(held).model_dump_json().encode()
        length = (b"content-length", str(len(answer)).encode())
        await send({"type": "http.response.start", "status": 201, "headers": [*_JSON, length]})
        await send({"type": "http.response.body", "body": answer})

    async def _decline(self, scope: Scope, body: bytes, send: Send) -> None:
        """Hand the request, body and all, to the FastAPI route: its answer is the schema's."""
        self.declined += 1
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.fallback({**scope, DECLINED: True}, replay, send)


def _valid(company_id: str, body: bytes, headers: dict[bytes, bytes]) -> HoldIn | None:
    key = headers.get(b"idempotency-key")
    if not _COMPANY.fullmatch(company_id) or (key is not None and len(key) > 200):
        return None
    try:
        return HoldIn.model_validate(json.loads(body))
    except (ValueError, ValidationError):
        return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def install_fast_holds(app: Any, state: ApiState) -> None:
    """Put the fast path in front of the app's routes (``routes.holds`` keeps the schema)."""
    template = next(
        r for r in holds_router.routes
        if getattr(r, "path", None) == "/wallets/{company_id}/holds"
        and "POST" in getattr(r, "methods", ())
    )  # fmt: skip
    app.router.routes.insert(0, FastHoldRoute(state, app.router, template))
