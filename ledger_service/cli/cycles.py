"""``ledger cycles``: billing cycles started on demand (``ledger react`` also starts them on a
schedule)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from ledger_service.bootstrap import bootstrap, build_projector, connector
from ledger_service.cli.shared import aware, load_settings
from ledger_service.reactions.cycles import run_cycles
from projections.tables import ReadModelTables

group = typer.Typer(help="Billing cycles.", no_args_is_help=True)


@group.command("run")
def run(
    at: datetime | None = typer.Option(
        None, "--at", help="start the cycles due at this time (ISO 8601; default: now)"
    ),
) -> None:
    """Start every wallet's billing cycles that are due: unused included quota expires and the
    new quota is granted, exactly once per wallet per cycle; missed cycles are caught up."""
    settings = load_settings()
    with bootstrap(settings) as container:
        now = datetime.now(UTC) if at is None else aware(at)
        # The due list comes from the wallet read model: bring it up to date first.
        projector = build_projector(container)
        projector.catch_up()
        projector.close()
        tables = ReadModelTables(settings.read_models_schema)
        wallets, started = run_cycles(container.ledger, connector(container), tables, now)
    typer.echo(f"{started} cycles started across {wallets} wallets due at {now.isoformat()}")
