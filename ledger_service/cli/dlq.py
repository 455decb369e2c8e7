"""``ledger dlq``: dead-lettered usage events."""

from __future__ import annotations

import asyncio

import typer

from ledger_service.cli.shared import broker_address, load_settings
from ledger_service.ingestion.dlq import replay_dead_letters

group = typer.Typer(help="Dead-lettered usage events.", no_args_is_help=True)


@group.command("replay")
def replay(
    code: str | None = typer.Option(None, help="only dead letters with this error code"),
    limit: int | None = typer.Option(None, min=1, help="at most this many"),
) -> None:
    """Re-publish dead letters to the usage topic (after their cause was fixed)."""
    settings = load_settings()
    report = asyncio.run(
        replay_dead_letters(
            broker_address(settings),
            dlq_topic=settings.dlq_topic,
            usage_topic=settings.usage_topic,
            code=code,
            limit=limit,
        )
    )
    typer.echo(
        f"republished {sum(report.republished.values())} "
        f"{dict(report.republished)}; skipped {dict(report.skipped)}"
    )
