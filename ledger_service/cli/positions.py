"""``ledger positions``: the consumed Kafka positions kept in the event store."""

from __future__ import annotations

import typer

from ledger_service.bootstrap import bootstrap
from ledger_service.cli.shared import load_settings

group = typer.Typer(help="Consumed Kafka positions kept in the event store.", no_args_is_help=True)


@group.command("forget")
def forget(
    topic: str = typer.Option(..., help="the usage topic whose positions to forget"),
    yes: bool = typer.Option(False, "--yes", help="confirm"),
) -> None:
    """Forget the recorded positions of a recreated topic: the consumer then starts at its
    beginning. Usage keys keep already-applied events from being applied again."""
    if not yes:
        raise typer.BadParameter("this moves the consumer to the topic's beginning; add --yes")
    with bootstrap(load_settings()) as container:
        count = container.ledger.forget_consumer_positions(f"kafka:{topic}:")
    typer.echo(f"forgot {count} partition positions of {topic}")
