"""``ledger migrate``: bring the read models to this release's version, once (see
``projections.migrations``); the step a deployment runs before rolling out a release."""

from __future__ import annotations

import psycopg
import typer

from ledger_service.bootstrap import bootstrap
from ledger_service.cli.shared import load_settings
from projections import migrations
from projections.tables import ReadModelTables


def migrate(
    check: bool = typer.Option(
        False, "--check", help="apply nothing; exit 1 unless the read models are this release's"
    ),
) -> None:
    """Create the event store's tables if missing and apply the read-model migrations this
    database has not had, oldest first, each once (safe to run again, and from several places
    at once)."""
    # This is the process allowed to create and alter tables: the event store's too.
    settings = load_settings().model_copy(update={"migrate_on_start": True})
    tables = ReadModelTables(settings.read_models_schema)
    with bootstrap(settings) as container, psycopg.connect(container.database_url) as conn:
        try:
            if check:
                migrations.check(conn, tables)
                typer.echo(f"read models at version {migrations.LATEST}: this release's")
                return
            applied = migrations.migrate(conn, tables)
        except (migrations.SchemaBehind, migrations.SchemaAhead) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    for migration in applied:
        typer.echo(f"applied {migration.version}: {migration.name}")
    typer.echo(f"read models at version {migrations.LATEST} in schema {tables.schema!r}")
