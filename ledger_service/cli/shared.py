"""What several command groups share: settings with logging configured, times taken as UTC, the
address of the broker that tools talk to, and running one ledger command as a script would."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import typer

from ledger_service.bootstrap import bootstrap
from ledger_service.config import Settings
from ledger_service.domain.errors import LedgerError
from ledger_service.logs import configure_logging
from ledger_service.service.runner import Command

IDEMPOTENCY_KEY = typer.Option(
    None, "--idempotency-key", help="repeat a command safely with the same key (default: new)"
)


def load_settings() -> Settings:
    """Settings from the environment; commands log as configured there from the start."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return settings


def aware(moment: datetime) -> datetime:
    """A time without a zone is taken as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def aware_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else aware(moment)


def broker_address(settings: Settings) -> str:
    """Tools talk to the configured cluster, or to a running `ledger run`'s embedded broker."""
    return settings.kafka_bootstrap or f"127.0.0.1:{settings.embedded_kafka_port}"


def handle_and_print(build: Callable[[str], Command[Any]], key: str | None) -> None:
    """Handle the command built with this idempotency key (default: a new one) and print its
    result as JSON; a ledger error prints its code and exits 1."""
    settings = load_settings()
    with bootstrap(settings) as container:
        try:
            result = container.ledger.handle(build(key or f"cli:{uuid.uuid4()}"))
        except LedgerError as exc:
            typer.echo(f"error: {exc.code}: {exc.message}", err=True)
            raise typer.Exit(1) from None
    typer.echo(json.dumps(result, sort_keys=True))
