"""A database that cannot be reached is a 503 the client may retry (with the same
Idempotency-Key), not a 500; a query the database refused is still a 500 (a bug to fix)."""

from __future__ import annotations

import asyncpg
import psycopg
import pytest
from psycopg_pool import PoolTimeout

from ledger_service.api.errors import is_outage
from ledger_service.service.runner import StoreUnavailable, translated_store_errors


def _through_the_runner(cause: Exception) -> BaseException:
    """What the API sees when the library wraps ``cause`` and the runner translates it."""
    from eventsourcing.persistence import DataError, OperationalError

    wrapper = OperationalError if isinstance(cause, psycopg.OperationalError) else DataError
    try:
        with translated_store_errors():
            try:
                raise cause
            except Exception as exc:
                raise wrapper(str(exc)) from exc
    except StoreUnavailable as translated:
        return translated
    raise AssertionError("not translated")


@pytest.mark.parametrize(
    "cause",
    [
        psycopg.OperationalError("connection refused"),
        PoolTimeout("couldn't get a connection after 5.00 sec"),
    ],
)
def test_an_unreachable_database_is_an_outage(cause: Exception) -> None:
    assert is_outage(_through_the_runner(cause))


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
def test_the_read_side_losing_its_database_is_an_outage(error: Exception) -> None:
    assert is_outage(error)


def test_data_the_database_refused_is_not_an_outage() -> None:
    refused = _through_the_runner(psycopg.DataError("text fields cannot contain NUL"))
    assert isinstance(refused, StoreUnavailable)
    assert not is_outage(refused)
    assert not is_outage(ValueError("a bug"))
