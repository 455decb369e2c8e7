"""The ``ledger`` command: the single entry point of the service and its tools."""

from __future__ import annotations

import typer
import uvicorn

from ledger_service.bootstrap import bootstrap
from ledger_service.config import Settings
from ledger_service.logs import configure_logging

cli = typer.Typer(help="Event-sourced prepaid-wallet ledger.", no_args_is_help=True)


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return settings


@cli.command()
def run() -> None:
    """Start the service on its configured (or embedded) infrastructure: the HTTP API."""
    serve()


@cli.command()
def serve() -> None:
    """Serve the HTTP API until Ctrl-C / SIGTERM."""
    from ledger_service.api.app import create_app

    settings = _settings()
    container = bootstrap(settings)
    try:
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(container.ledger),
                host=settings.http_host,
                port=settings.http_port,
                log_config=None,
                access_log=False,
            )
        )
        # uvicorn installs SIGINT/SIGTERM handlers and drains in-flight requests on shutdown.
        server.run()
    finally:
        container.close()


def main() -> None:
    cli()
