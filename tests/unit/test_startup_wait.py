"""A long-running role started before its database waits for it (bounded) instead of exiting
at once: the soak saw a projector restarted during a PostgreSQL restart exit 1."""

from __future__ import annotations

import socket
import time

import psycopg
import pytest

from ledger_service.bootstrap import database_reachable


def test_it_waits_until_the_database_answers() -> None:
    answers = [psycopg.OperationalError("refused"), psycopg.OperationalError("starting"), None]
    slept: list[float] = []

    def connect(_: str) -> None:
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    database_reachable("postgresql://db", 60, connect=connect, sleep=slept.append)
    assert answers == []
    assert len(slept) == 2


def test_it_gives_up_after_the_wait_with_the_last_error() -> None:
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        database_reachable(f"postgresql://postgres@127.0.0.1:{port}/postgres", 1.5)
    assert 1.5 <= time.monotonic() - started < 10


def test_without_a_wait_a_one_shot_command_fails_at_once() -> None:
    def refused(_: str) -> None:
        raise psycopg.OperationalError("refused")

    with pytest.raises(psycopg.OperationalError):
        database_reachable("postgresql://db", 0, connect=refused, sleep=pytest.fail)
