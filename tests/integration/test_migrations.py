"""Versioned read-model migrations on a real PostgreSQL: `ledger migrate` applies each once,
a database made before versioning passes through the baseline with its rows, and a process
refuses read models of another version instead of failing at its first request."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from ledger_service.service.ledger import LedgerApplication
from projections import migrations
from projections.tables import BASELINE_DDL
from tests.conftest import free_port
from tests.integration.test_audit import ledger
from tests.integration.test_audit_cli import run_ledger

pytestmark = pytest.mark.integration
__all__ = ["ledger"]  # the fixture, shared with test_audit


def versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT version FROM public.rm_schema_migrations ORDER BY 1")
        return [r[0] for r in rows.fetchall()]


def serve_without_migrating(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`ledger serve` told not to migrate: it must refuse, not serve (or hang)."""
    env = {"LEDGER_MIGRATE_ON_START": "false", "LEDGER_HTTP_PORT": str(free_port())}
    return run_ledger(url, *extra, "serve", env=env)


def test_migrate_applies_each_migration_once(
    ledger: LedgerApplication, fresh_database_url: str
) -> None:
    url = fresh_database_url
    first = run_ledger(url, "migrate")
    assert first.returncode == 0, first.stderr
    assert "applied 1: baseline" in first.stdout
    again = run_ledger(url, "migrate")
    assert (again.returncode, "applied" in again.stdout) == (0, False)
    assert versions(url) == [m.version for m in migrations.MIGRATIONS]
    assert run_ledger(url, "migrate", "--check").returncode == 0


def test_a_database_from_before_versioning_keeps_its_rows_and_is_refused_until_migrated(
    ledger: LedgerApplication, fresh_database_url: str
) -> None:
    url = fresh_database_url
    with psycopg.connect(url) as conn:  # what an earlier release left: tables, no versions
        conn.execute(BASELINE_DDL.format(s='"public"', name="public"))
        conn.execute("INSERT INTO public.rm_projection_positions (name, position) VALUES ('x', 42)")
    refused = serve_without_migrating(url)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "run `ledger migrate` first" in refused.stderr
    checked = run_ledger(url, "migrate", "--check")
    assert checked.returncode == 1
    assert run_ledger(url, "migrate").returncode == 0
    with psycopg.connect(url) as conn:
        kept = conn.execute(
            "SELECT position FROM public.rm_projection_positions WHERE name = 'x'"
        ).fetchone()
    assert kept == (42,)
    assert run_ledger(url, "replay", "--all").returncode == 0
    assert run_ledger(url, "migrate", "--check").returncode == 0, "replay keeps the version"


def test_a_release_older_than_its_read_models_refuses_them(
    ledger: LedgerApplication, fresh_database_url: str
) -> None:
    url = fresh_database_url
    assert run_ledger(url, "migrate").returncode == 0
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO public.rm_schema_migrations (version, name) VALUES (99, 'x')")
    refused = serve_without_migrating(url)
    assert refused.returncode == 1
    assert "newer than this release reads" in refused.stderr
    migrating = run_ledger(url, "migrate")
    assert migrating.returncode == 1, "nor does migrate touch them"
