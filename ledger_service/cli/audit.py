"""The books checked and rebuilt from the events: ``verify``, ``replay``, ``history`` and
``audit export``."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from datetime import datetime

import psycopg
import typer

from ledger_service.audit.verify import ReadModelSnapshot
from ledger_service.bootstrap import bootstrap
from ledger_service.cli.progress import progress_bar
from ledger_service.cli.shared import aware_or_none, load_settings
from ledger_service.domain.errors import LedgerError

group = typer.Typer(help="Audit trail.", no_args_is_help=True)


def verify() -> None:
    """Recompute the books from the events, check them and compare the read models with them;
    exit 1 naming every fault found."""
    from ledger_service.audit.verify import verify as run_verify

    settings = load_settings()
    with bootstrap(settings) as container:
        snapshot = _read_models_or_none(container.database_url, settings.read_models_schema)
        total = container.ledger.recorder.max_notification_id() or 0
        started = time.monotonic()
        with progress_bar(total, "verify") as advance:
            report = run_verify(container.ledger, read_models=snapshot, progress=advance)
    elapsed = max(time.monotonic() - started, 1e-9)
    typer.echo(
        f"checked {report.events} events of {len(report.wallets)} wallets in "
        f"{elapsed:.1f}s ({report.events / elapsed:,.0f} events/s)"
    )
    if snapshot is None:
        typer.echo("read models: none yet (run `ledger project`); not compared")
    if report.ok:
        typer.echo(
            "OK: hash chains intact, versions gapless, trial balance zero, top-ups "
            "credited once, no usage applied twice"
            + (", read models agree" if snapshot is not None else "")
        )
        return
    for problem in report.problems:
        typer.echo(f"FAULT: {problem}", err=True)
    if report.problem_count > len(report.problems):
        typer.echo(f"... and {report.problem_count - len(report.problems)} more", err=True)
    raise typer.Exit(1)


def _read_models_or_none(database_url: str, schema: str) -> ReadModelSnapshot | None:
    from ledger_service.audit.verify import read_model_snapshot

    with psycopg.connect(database_url) as conn:
        try:
            return read_model_snapshot(conn, schema)
        except psycopg.errors.UndefinedTable:
            return None


def replay(
    projection: str | None = typer.Option(None, help="the projection to rebuild: read_models"),
    all_: bool = typer.Option(False, "--all", help="rebuild every projection"),
    to_position: int | None = typer.Option(None, min=1, help="stop at this event position"),
) -> None:
    """Rebuild the read models from the event store into fresh tables and swap them in
    atomically; the live API keeps serving the old tables until the swap."""
    from ledger_service.audit.replay import replay as run_replay
    from projections.tables import PROJECTION_NAME

    if all_ == (projection is not None):
        raise typer.BadParameter("give --projection NAME or --all")
    if projection is not None and projection != PROJECTION_NAME:
        raise typer.BadParameter(f"unknown projection {projection!r}; known: {PROJECTION_NAME}")
    settings = load_settings()
    with bootstrap(settings) as container:
        url = container.database_url
        total = to_position or container.ledger.recorder.max_notification_id() or 0
        with progress_bar(total, "replay") as advance:
            result = run_replay(
                container.ledger,
                lambda: psycopg.connect(url),
                live_schema=settings.read_models_schema,
                to_position=to_position,
                progress=advance,
            )
    typer.echo(
        f"replayed {result.events} events up to position {result.position} in "
        f"{result.seconds:.1f}s ({result.events_per_s:,.0f} events/s); swapped in"
    )


@contextlib.contextmanager
def _refusals_as_exit() -> Iterator[None]:
    """A refusal (unknown company, conflicting options) is one line and exit status 1, not a
    traceback."""
    try:
        yield
    except LedgerError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(1) from None


def history(
    company: str = typer.Option(..., help="company id"),
    at: datetime | None = typer.Option(None, help="a time (ISO 8601; no zone means UTC)"),
    position: int | None = typer.Option(None, min=1, help="a global event position"),
    pool_sender: str | None = typer.Option(None, help="per_sender wallets: the sender"),
) -> None:
    """The wallet's state (buckets, limits, senders) as it was then, from its events."""
    from ledger_service.audit.history import wallet_as_of

    with bootstrap(load_settings()) as container, _refusals_as_exit():
        state = wallet_as_of(
            container.ledger,
            company,
            position=position,
            at=aware_or_none(at),
            pool_sender_id=pool_sender,
        )
    typer.echo(json.dumps(state.as_dict(), indent=2))


@group.command("export")
def export(
    company: str = typer.Option(..., help="company id"),
    since: datetime | None = typer.Option(None, "--from", help="from this time (inclusive)"),
    until: datetime | None = typer.Option(None, "--to", help="to this time (exclusive)"),
    fmt: str = typer.Option("csv", "--format", help="csv or jsonl"),
    pool_sender: str | None = typer.Option(None, help="per_sender wallets: the sender"),
) -> None:
    """Write the wallet's full trail to standard output."""
    from ledger_service.audit.export import audit_rows, write_rows

    if fmt not in ("csv", "jsonl"):
        raise typer.BadParameter("--format is csv or jsonl")
    with bootstrap(load_settings()) as container, _refusals_as_exit():
        rows = audit_rows(
            container.ledger,
            company,
            since=aware_or_none(since),
            until=aware_or_none(until),
            pool_sender_id=pool_sender,
        )
        write_rows(rows, sys.stdout, fmt)
