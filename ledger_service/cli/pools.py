"""``ledger pools``: move companies from legacy per-sender pools to one shared pool, and list
the pools still in use (``service.pools``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import typer

from ledger_service.bootstrap import Container, bootstrap, build_projector, read_models_opener
from ledger_service.cli.shared import load_settings
from ledger_service.domain.errors import LedgerError
from ledger_service.domain.ids import check_key
from ledger_service.service.pools import migrate_pools
from projections.queries import ReadModels

group = typer.Typer(help="Legacy per-sender pools.", no_args_is_help=True)
ACTOR = "pools-migrate@cli"
COVERAGE_LISTED_MAX = 1000


@group.command("migrate")
def migrate(
    company: str = typer.Option(..., "--company", help="the company to move"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan, write nothing"),
) -> None:
    """Merge the company's per-sender pools into its shared pool (opened if needed): each
    pool's quota, money and debt move as paired entries, its sender is relinked, and it is
    closed. Safe to run again: what was done is skipped, what was not is done."""
    with bootstrap(load_settings()) as container:
        senders = _read(container, lambda reads: reads.legacy_pools(check_key(company, "company")))
        try:
            report = migrate_pools(container.ledger, company, senders, actor=ACTOR, dry_run=dry_run)
        except LedgerError as exc:
            typer.echo(f"error: {exc.code}: {exc.message}", err=True)
            raise typer.Exit(1) from None
    verb = "would move" if dry_run else "moved"
    typer.echo(f"{company}: shared pool {report.shared_wallet}; {verb} {report.moved}")
    for pool in report.pools:
        typer.echo(
            f"  {pool['sender']}: {pool['status']} (included {pool['included']}, "
            f"prepaid {pool['prepaid']}, debt {pool['debt']})"
        )


@group.command("coverage")
def coverage() -> None:
    """List the per-sender pools still in use (a sender linked, or anything left in them);
    exits 1 while any remain, 0 once every company draws from a shared pool."""
    with bootstrap(load_settings()) as container:
        rows = _read(container, lambda reads: reads.pool_coverage(COVERAGE_LISTED_MAX))
    for row in rows:
        senders = ",".join(row["senders"]) or "-"
        typer.echo(
            f"{row['company_id']}\t{row['pool_sender_id']}\tsenders={senders}\t"
            f"balance={row['balance']} {row['currency']}"
        )
    typer.echo(
        f"{len(rows)} per-sender pools in use"
        + (" (first shown)" if len(rows) >= COVERAGE_LISTED_MAX else "")
    )
    if rows:
        raise typer.Exit(1)


def _read(container: Container, query: Callable[[ReadModels], Awaitable[Any]]) -> Any:
    """Bring the read models up to date, then ask them (they list the pools)."""
    projector = build_projector(container)
    projector.catch_up()
    projector.close()

    async def ask() -> Any:
        reads, close = await read_models_opener(container.settings, container.database_url)()
        try:
            return await query(reads)
        finally:
            await close()

    return asyncio.run(ask())
