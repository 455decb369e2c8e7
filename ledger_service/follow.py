"""The one loop of every log follower: wait for news, handle a batch, advance - and the one
stop-aware wait every long-lived part uses.

A follower's ``step`` selects a bounded batch after its position, applies it and advances the
position; it answers whether it found anything, so the loop goes again at once while there is a
backlog and otherwise waits for the event store's NOTIFY (sent by every insert, see
``LedgerRecorder._insert_stored_events``), polling every ``poll_interval_s`` anyway because a
NOTIFY is lost while the listening connection is down.

Errors are split in two on purpose. The *expected* ones - the database or the broker cannot be
reached (``recoverable``) - are waited out here with a doubling back-off and a warning, because
nothing is wrong with the follower and retrying is the fix. Anything else is a bug: it
propagates, so the supervisor (``ledger_service.runner.restarting``) logs it with its traceback
and restarts the worker, instead of a ``log and carry on`` loop hiding it forever.

Why not the library's ``ProjectionRunner`` / ``ApplicationSubscription`` (eventsourcing 9.5.6):
the runner constructs its own application from a class and environment (the service builds one
``LedgerApplication`` with its own recorder), hands events to ``process_event`` one at a time
(the projector commits a thousand per transaction), and its subscription threads turn any error,
a dropped connection included, into the end of the subscription rather than a retry. The
subscription's tracking also only moves on events of the chosen topics, so a follower of rare
events re-scans the whole stretch after every restart; ``LogFollower`` advances to the log head
it read. ``TrackingRecorder.wait`` polls (no NOTIFY) and waits for *another* process's position,
which the followers never need to do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from psycopg.sql import SQL, Identifier

from ledger_service.service.runner import StoreUnavailable

log = structlog.get_logger(__name__)

Step = Callable[[], Awaitable[bool]]
ListenConnect = Callable[[], Awaitable[psycopg.AsyncConnection[Any]]]
Recoverable = tuple[type[BaseException], ...]
# The event store is down (the service layer's translation) or the follower's own connection
# (positions, the read models, the listener) dropped.
DATABASE_UNAVAILABLE: Recoverable = (StoreUnavailable, psycopg.OperationalError)


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep up to ``seconds``, returning as soon as ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class Wakeup:
    """The event store's NOTIFY as an awaitable: one LISTENing connection, opened on demand."""

    def __init__(self, connect: ListenConnect, channel: str) -> None:
        self.connect = connect
        self.channel = channel
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def wait(self, stop: asyncio.Event, timeout: float) -> None:
        """Return on the next NOTIFY, after ``timeout`` or once ``stop`` is set."""
        if stop.is_set():
            return
        conn = await self._listening()
        notified = asyncio.ensure_future(_first_notify(conn, timeout))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({notified, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not notified.done():
            # Interrupted mid-wait, the connection's state is unknown: start afresh next time.
            notified.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await notified
            await self.close()
            return
        if notified.exception() is not None:
            await self.close()
        notified.result()

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None

    async def _listening(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            conn = await self.connect()
            await conn.set_autocommit(True)
            await conn.execute(SQL("LISTEN {}").format(Identifier(self.channel)))
            self._conn = conn
        return self._conn


async def _first_notify(conn: psycopg.AsyncConnection[Any], timeout: float) -> None:
    async for _ in conn.notifies(timeout=timeout, stop_after=1):
        pass


@dataclass
class FollowLoop:
    """Runs a follower's ``step`` until ``stop``; see the module's docstring."""

    name: str
    wakeup: Wakeup | None = None
    """None: poll only (a test, or a store without NOTIFY)."""
    poll_interval_s: float = 0.5
    backoff_max_s: float = 5.0
    recoverable: Recoverable = DATABASE_UNAVAILABLE

    async def run(self, step: Step, stop: asyncio.Event) -> None:
        backoff = self.poll_interval_s
        try:
            while not stop.is_set():
                try:
                    if not await step():
                        await self._idle(stop)
                    backoff = self.poll_interval_s
                except self.recoverable as exc:
                    log.warning(
                        "follower_unavailable",
                        follower=self.name,
                        error=repr(exc),
                        retry_in_s=backoff,
                    )
                    if self.wakeup is not None:
                        await self.wakeup.close()
                    await pause(stop, backoff)
                    backoff = min(backoff * 2, self.backoff_max_s)
        finally:
            if self.wakeup is not None:
                await self.wakeup.close()

    async def _idle(self, stop: asyncio.Event) -> None:
        if self.wakeup is None:
            await pause(stop, self.poll_interval_s)
        else:
            await self.wakeup.wait(stop, self.poll_interval_s)
