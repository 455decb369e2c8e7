"""Versioned read-model migrations: each runs once per schema, recorded in
``rm_schema_migrations`` in the same transaction as its DDL, under the read models' DDL lock.

Version 1 is the schema as it stood when migrations began. Its DDL is idempotent (``IF NOT
EXISTS``, and the column additions earlier releases made on start), so a database made by any
earlier release passes through it to version 1 unchanged in content. Every later change is a new
``Migration`` appended to ``MIGRATIONS``; one that shipped is never edited.

A process that reads or writes the read models checks the version at start (``check``): behind
this release (``SchemaBehind``: run ``ledger migrate``) or ahead of it (``SchemaAhead``: this
release is older than the schema, roll it forward) it refuses to start, instead of failing on a
missing column at the first request. ``LEDGER_MIGRATE_ON_START`` (on outside production) lets a
process migrate for itself, as ``ledger run`` on a laptop does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from projections.tables import BASELINE_DDL, ReadModelTables

MIGRATIONS_TABLE = "rm_schema_migrations"
SETUP_LOCK_ID = 0x6C65_6467_6572  # "ledger": one advisory lock for read-model DDL


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    """DDL with ``{s}`` for the quoted schema and ``{name}`` for its plain name."""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "baseline: the read models as of 2026-11-23", BASELINE_DDL),
)
LATEST = MIGRATIONS[-1].version


class SchemaBehind(Exception):
    """The read models are older than this release: ``ledger migrate`` brings them forward."""


class SchemaAhead(Exception):
    """The read models are newer than this release: it would misread them."""


def migrations_table(tables: ReadModelTables) -> str:
    return f'"{tables.schema}".{MIGRATIONS_TABLE}'


def applied_version(conn: psycopg.Connection[Any], tables: ReadModelTables) -> int:
    """The latest migration applied to ``tables``' schema (0: none, or no table yet)."""
    exists = conn.execute("SELECT to_regclass(%s)", (migrations_table(tables),)).fetchone()
    if exists is None or exists[0] is None:
        return 0
    row = conn.execute(f"SELECT max(version) FROM {migrations_table(tables)}").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(conn: psycopg.Connection[Any], tables: ReadModelTables) -> list[Migration]:
    """Apply the migrations ``tables``' schema has not had, oldest first; those applied."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SETUP_LOCK_ID,))
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{tables.schema}"')
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {migrations_table(tables)} ("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = applied_version(conn, tables)
        if current > LATEST:
            raise SchemaAhead(_ahead(current))
        pending = [m for m in MIGRATIONS if m.version > current]
        for migration in pending:
            conn.execute(migration.sql.format(s=f'"{tables.schema}"', name=tables.schema))
            conn.execute(
                f"INSERT INTO {migrations_table(tables)} (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
    return pending


def check(conn: psycopg.Connection[Any], tables: ReadModelTables) -> None:
    """Refuse read models of another version than this release's (see the module)."""
    current = applied_version(conn, tables)
    conn.rollback()  # a read outside any transaction of the caller's
    if current < LATEST:
        raise SchemaBehind(
            f"the read models in schema {tables.schema!r} are at version {current}, this "
            f"release needs {LATEST}: run `ledger migrate` first"
        )
    if current > LATEST:
        raise SchemaAhead(_ahead(current))


def _ahead(current: int) -> str:
    return (
        f"the read models are at version {current}, newer than this release reads "
        f"({LATEST}): deploy the release that migrated them"
    )
