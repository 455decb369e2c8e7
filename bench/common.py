"""Shared benchmark plumbing: a fresh database per run and honest statistics."""

from __future__ import annotations

import os
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ledger_service.embedded import embedded_postgres_server

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin_url() -> tuple[str, object | None]:
    url = os.environ.get("LEDGER_BENCH_DATABASE_URL")
    if url:
        return url, None
    try:
        with psycopg.connect(LOCAL_POSTGRES, connect_timeout=2):
            return LOCAL_POSTGRES, None
    except psycopg.OperationalError:
        import tempfile
        from pathlib import Path

        server = embedded_postgres_server(Path(tempfile.mkdtemp()) / "pg", cleanup_mode="delete")
        return server.get_uri(), server


@contextmanager
def fresh_database() -> Iterator[str]:
    """A database created for this benchmark run and dropped after it."""
    admin, server = _admin_url()
    name = f"ledger_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(admin)
    params["dbname"] = name
    try:
        yield make_conninfo("", **params)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if server is not None:
            server.cleanup()  # type: ignore[attr-defined]


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    return f"median {median(values):,.0f} (min {min(values):,.0f}, max {max(values):,.0f})"
