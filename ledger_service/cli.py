"""The ``ledger`` command: the single entry point of the service and its tools."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import typer

from ledger_service.api.auth import mint_token
from ledger_service.bootstrap import bootstrap, build_api, build_projector
from ledger_service.config import Settings
from ledger_service.logs import configure_logging
from ledger_service.runner import Worker, run_until_signalled, serve_http
from projections.projector import follow_until_stopped

cli = typer.Typer(help="Event-sourced prepaid-wallet ledger.", no_args_is_help=True)


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return settings


@cli.command()
def run() -> None:
    """Start the whole service on its configured (or embedded) infrastructure."""
    _run_parts(http=True, projections=True)


@cli.command()
def serve() -> None:
    """Serve the HTTP API only, until Ctrl-C / SIGTERM."""
    _run_parts(http=True)


@cli.command()
def project(
    once: bool = typer.Option(False, "--once", help="catch up with the event store and exit"),
) -> None:
    """Build the read models from the event store and keep following it (exactly once)."""
    if once:
        settings = _settings()
        container = bootstrap(settings)
        try:
            projector = build_projector(container)
            typer.echo(f"projected up to position {projector.catch_up()}")
            projector.close()
        finally:
            container.close()
        return
    _run_parts(projections=True)


@cli.command()
def token(
    company: str = typer.Option(None, "--company", help="company_id claim (tenants)"),
    scopes: str = typer.Option("billing.view", "--scopes", help="comma/space-separated"),
    subject: str = typer.Option("dev", "--sub", help="sub claim: who is calling"),
    ttl_s: int = typer.Option(None, "--ttl-s", help="lifetime; default LEDGER_JWT_TTL_S"),
) -> None:
    """Mint a bearer token (HS256, signed with LEDGER_JWT_SECRET) for development."""
    settings = Settings()
    scope_list = [s for s in scopes.replace(",", " ").split() if s]
    typer.echo(
        mint_token(
            settings.jwt_secret,
            subject=subject,
            company_id=company,
            scopes=scope_list,
            ttl_s=ttl_s or settings.jwt_ttl_s,
        )
    )


def _run_parts(*, http: bool = False, projections: bool = False) -> None:
    settings = _settings()
    container = bootstrap(settings)
    workers: dict[str, Worker] = {}
    if http:
        app = build_api(container)
        workers["http"] = functools.partial(serve_http, app, settings.http_host, settings.http_port)
    if projections:
        workers["projections"] = functools.partial(
            follow_until_stopped,
            build_projector(container),
            poll_interval_s=settings.projection_poll_interval_ms / 1000,
        )
    try:
        with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
            runner.run(run_until_signalled(workers))
    finally:
        container.close()


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed: less CPU per request on the read path (see bench-api)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - not on Windows
        return None
    return uvloop.new_event_loop


def main() -> None:
    cli()
