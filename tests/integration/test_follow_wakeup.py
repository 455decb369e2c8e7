"""The followers' wake-up: the event store's NOTIFY ends the wait at once, ``stop`` too, and a
silent log only costs the poll interval."""

from __future__ import annotations

import asyncio
import time

import psycopg

from ledger_service.follow import Wakeup

CHANNEL = "ledger_test_events"


def _wakeup(url: str) -> Wakeup:
    return Wakeup(lambda: psycopg.AsyncConnection.connect(url), CHANNEL)


async def test_a_notify_wakes_the_follower_before_its_poll_interval(database_url: str) -> None:
    wakeup = _wakeup(database_url)
    stop = asyncio.Event()
    try:
        await wakeup.wait(stop, 0.01)  # LISTENing from here on; nothing sent: the timeout
        started = time.monotonic()
        waiting = asyncio.create_task(wakeup.wait(stop, 30))
        await asyncio.sleep(0.1)
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute(f'NOTIFY "{CHANNEL}"')
        await asyncio.wait_for(waiting, timeout=10)
        assert time.monotonic() - started < 5  # far below the 30 s poll
    finally:
        await wakeup.close()


async def test_stop_ends_the_wait_and_the_next_wait_listens_again(database_url: str) -> None:
    wakeup = _wakeup(database_url)
    stop = asyncio.Event()
    try:
        waiting = asyncio.create_task(wakeup.wait(stop, 30))
        await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(waiting, timeout=10)
        await asyncio.wait_for(wakeup.wait(asyncio.Event(), 0.05), timeout=10)
    finally:
        await wakeup.close()
