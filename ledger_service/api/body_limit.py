"""A bound on request bodies (``LEDGER_HTTP_BODY_MAX_BYTES``), before anything reads them.

Every body this API takes is a small JSON document (a webhook is a few kilobytes), so a larger
one is refused with 413 ``PAYLOAD_TOO_LARGE``: by its ``Content-Length`` at once, or, sent in
chunks without one, as soon as it grows past the bound, without buffering the rest.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger_service.api.errors import error_response

BODY_MAX_BYTES_DEFAULT = 1_048_576


class _TooLarge(HTTPException):
    """Raised from ``receive``: an HTTP error, so that a route parsing its body (FastAPI turns
    other exceptions there into 400) answers 413 through the app's handlers."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is over {max_bytes} bytes")


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = BODY_MAX_BYTES_DEFAULT) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _TooLarge(self.max_bytes)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if started:  # the app already answered: nothing more can be said
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "PAYLOAD_TOO_LARGE", f"the request body is over {self.max_bytes} bytes"
        )
        await response(scope, receive, send)
