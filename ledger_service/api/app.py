"""The FastAPI application: health and readiness now; the /v1 API joins here."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from ledger_service.application import LedgerApplication

log = structlog.get_logger(__name__)

READINESS_TIMEOUT_S = 2.0


def create_app(ledger: LedgerApplication) -> FastAPI:
    app = FastAPI(title="Ledger service", version="0.1.0")

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is alive (it answers); says nothing about its dependencies."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=None)
    async def readyz() -> JSONResponse | dict[str, Any]:
        """Ready when the event store answers within ``READINESS_TIMEOUT_S``."""
        try:
            position = await asyncio.wait_for(
                asyncio.to_thread(ledger.recorder.max_notification_id), READINESS_TIMEOUT_S
            )
        except Exception as exc:
            log.warning("readiness_check_failed", error=str(exc))
            return JSONResponse(
                status_code=503,
                content={"status": "unavailable", "checks": {"event_store": str(exc) or "timeout"}},
            )
        return {"status": "ready", "checks": {"event_store": "ok"}, "position": position or 0}

    return app
