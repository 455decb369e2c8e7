"""The ``ledger`` command: the single entry point of the service and its tools."""

from __future__ import annotations

import asyncio
import functools

import typer

from ledger_service.api.app import create_app
from ledger_service.bootstrap import bootstrap
from ledger_service.config import Settings
from ledger_service.logs import configure_logging
from ledger_service.runner import Worker, run_until_signalled, serve_http

cli = typer.Typer(help="Event-sourced prepaid-wallet ledger.", no_args_is_help=True)


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return settings


@cli.command()
def run() -> None:
    """Start the whole service on its configured (or embedded) infrastructure."""
    _run_parts(http=True)


@cli.command()
def serve() -> None:
    """Serve the HTTP API only, until Ctrl-C / SIGTERM."""
    _run_parts(http=True)


def _run_parts(*, http: bool) -> None:
    settings = _settings()
    container = bootstrap(settings)
    workers: dict[str, Worker] = {}
    if http:
        app = create_app(container.ledger)
        workers["http"] = functools.partial(serve_http, app, settings.http_host, settings.http_port)
    try:
        asyncio.run(run_until_signalled(workers))
    finally:
        container.close()


def main() -> None:
    cli()
