"""``ledger publish-sample``: a realistic usage stream for trying the service out."""

from __future__ import annotations

import asyncio

import typer

from ledger_service.bootstrap import bootstrap
from ledger_service.cli.shared import broker_address, load_settings
from ledger_service.ingestion.sample import SampleShape, publish, sample_events, setup_wallets


def publish_sample(
    companies: int = typer.Option(10, min=1, help="distinct companies"),
    senders_per_company: int = typer.Option(3, min=1, help="senders (WABAs) per company"),
    events: int = typer.Option(1000, min=0, help="events to publish"),
    duplicates_pct: float = typer.Option(
        0.0, min=0, max=100, help="percent of events re-sent verbatim"
    ),
    rate: float = typer.Option(0.0, min=0, help="events per second; 0 = as fast as possible"),
    setup: bool = typer.Option(True, help="open the sample wallets and link their senders"),
    seed: int | None = typer.Option(None, help="random seed for a repeatable stream"),
) -> None:
    """Publish realistic usage events (CloudEvents) to the usage topic."""
    settings = load_settings()
    shape = SampleShape(companies, senders_per_company)
    if setup:
        with bootstrap(settings) as container:
            setup_wallets(container.ledger, shape)
    stream = sample_events(shape, events, duplicates_pct=duplicates_pct, seed=seed)
    sent = asyncio.run(
        publish(broker_address(settings), settings.usage_topic, stream, rate_per_s=rate or None)
    )
    typer.echo(
        f"published {sent} events to {settings.usage_topic} "
        f"({companies} companies x {senders_per_company} senders)"
    )
