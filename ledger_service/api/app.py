"""The FastAPI application: ``/v1`` (``routes``), health, readiness and metrics.

The app builds no infrastructure: the composition root passes ``open_reads``, an async function
that opens the read-model pool (called in the app's lifespan, inside the serving event loop) and
returns the ``ReadModels`` and a closer. ``readiness_checks`` lets other parts (the Kafka
consumer) add a named check to ``/readyz``: an async callable that raises when not ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ledger_service import metrics
from ledger_service.api.auth import Authenticator, JwtKeys
from ledger_service.api.body_limit import BODY_MAX_BYTES_DEFAULT, BodySizeLimit
from ledger_service.api.context import RequestContextMiddleware
from ledger_service.api.errors import ERROR_RESPONSES, install_error_handlers
from ledger_service.api.fast_holds import install_fast_holds
from ledger_service.api.routes import ApiState, payments, router
from ledger_service.api.routes.auto_open import WalletDefaults
from ledger_service.service.hold_batcher import HoldBatcher
from ledger_service.service.ledger import LedgerApplication
from projections.queries import ReadModels
from schemas.api import document_units

log = structlog.get_logger(__name__)

READINESS_TIMEOUT_S = 2.0
ReadsOpener = Callable[[], Awaitable[tuple[ReadModels, Callable[[], Awaitable[None]]]]]
ReadinessCheck = Callable[[], Awaitable[object]]


def create_app(
    ledger: LedgerApplication,
    *,
    jwt_secret: str = "",
    jwt_keys: JwtKeys | None = None,
    open_reads: ReadsOpener | None = None,
    read_wait_timeout_s: float = 2.0,
    projection_lag_events_max: int = 100_000,
    readiness_checks: dict[str, ReadinessCheck] | None = None,
    hold_group_window_s: float = 0.0,
    webhook_secrets: Mapping[str, str] | None = None,
    aggregate_timeout_s: float = 0.5,
    wallet_defaults: WalletDefaults | None = None,
    fast_holds: bool = True,
    body_max_bytes: int = BODY_MAX_BYTES_DEFAULT,
) -> FastAPI:
    """``hold_group_window_s`` > 0: hold requests are committed in groups (``HoldBatcher``).
    ``webhook_secrets``: provider -> the secret its webhooks are signed with (a provider
    without one has no webhook endpoint)."""
    state = ApiState(
        ledger=ledger,
        authenticate=Authenticator(jwt_keys or JwtKeys(jwt_secret)),
        read_wait_timeout_s=read_wait_timeout_s,
        webhook_secrets=dict(webhook_secrets or {}),
        aggregate_timeout_s=aggregate_timeout_s,
        wallet_defaults=wallet_defaults,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        close: Callable[[], Awaitable[None]] | None = None
        if open_reads is not None:
            state.reads, close = await open_reads()
        if hold_group_window_s > 0:
            state.holds = HoldBatcher(ledger, window_s=hold_group_window_s)
            state.holds.start()
        try:
            yield
        finally:
            if state.holds is not None:
                await asyncio.to_thread(state.holds.close)
                state.holds = None
            state.reads = None
            if close is not None:
                await close()

    app = FastAPI(
        title="Ledger service",
        version="0.1.0",
        description="Prepaid wallets: balances, transactions, usage, top-ups. Money is always a "
        "decimal string. Errors: {error: {code, message, request_id}}.",
        lifespan=lifespan,
    )
    app.state.api = state
    app.add_middleware(BodySizeLimit, max_bytes=body_max_bytes)
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(payments.public_router, prefix="/v1", responses=ERROR_RESPONSES)
    _ops_routes(app, state, projection_lag_events_max, readiness_checks or {})
    if fast_holds:
        install_fast_holds(app, state)
    _document_units(app, sorted(ledger.credit_rates))
    return app


def _document_units(app: FastAPI, units: list[str]) -> None:
    """The OpenAPI document names the units of account this service is configured with."""
    generate = app.openapi
    documented: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not documented:
            schema = generate()
            document_units(schema, units)
            documented.append(schema)
        return documented[0]

    app.openapi = openapi  # type: ignore[method-assign]


def create_ops_app(
    ledger: LedgerApplication, readiness_checks: dict[str, ReadinessCheck] | None = None
) -> FastAPI:
    """``/healthz``, ``/readyz`` and ``/metrics`` alone: what a process without the API
    (``consume``, ``project``, ``react``) serves for its supervisor and Prometheus."""
    state = ApiState(ledger=ledger, authenticate=Authenticator(""), read_wait_timeout_s=0.0)
    app = FastAPI(title="Ledger service (operations)", openapi_url=None, docs_url=None,
                  redoc_url=None)  # fmt: skip
    _ops_routes(app, state, 0, readiness_checks or {})
    return app


def _ops_routes(
    app: FastAPI, state: ApiState, lag_max: int, checks: dict[str, ReadinessCheck]
) -> None:
    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is alive (it answers); says nothing about its dependencies."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=None)
    async def readyz() -> JSONResponse | dict[str, Any]:
        """Ready when the event store answers, the projection is within the lag limit and every
        registered check (e.g. the broker) passes, each within ``READINESS_TIMEOUT_S``."""
        results: dict[str, str] = {}
        head = await _check(results, "event_store", _head(state.ledger))
        detail: dict[str, Any] = {"position": head or 0}
        if state.reads is not None:
            lag = await _check(results, "projections", _lag(state, head or 0, lag_max))
            detail["projection_lag_events"] = lag
        for name, check in checks.items():
            await _check(results, name, check())
        ready = all(value == "ok" for value in results.values())
        metrics.READY.set(1 if ready else 0)
        body = {"status": "ready" if ready else "unavailable", "checks": results, **detail}
        if not ready:
            log.warning("not_ready", checks=results)
            return JSONResponse(status_code=503, content=body)
        return body

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text format: requests, latencies, projection lag, ingestion counters."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _check(results: dict[str, str], name: str, check: Awaitable[Any]) -> Any:
    try:
        value = await asyncio.wait_for(check, READINESS_TIMEOUT_S)
    except Exception as exc:
        results[name] = str(exc) or type(exc).__name__
        return None
    results[name] = "ok"
    return value


async def _head(ledger: LedgerApplication) -> int | None:
    return await asyncio.to_thread(ledger.recorder.max_notification_id)


async def _lag(state: ApiState, head: int, lag_max: int) -> int:
    assert state.reads is not None
    lag = max(head - await state.reads.position(), 0)
    metrics.PROJECTION_LAG_EVENTS.set(lag)
    if lag > lag_max:
        raise RuntimeError(f"projection is {lag} events behind (limit {lag_max})")
    return lag
