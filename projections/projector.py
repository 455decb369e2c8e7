"""The read-model projection: follows the event store's notification log, exactly once.

Each batch is read from the notification log (positions = notification ids, strictly
increasing; the event store's table lock makes commit order equal id order, so following by id
never skips an event), applied in memory (``BatchBuilder``) and written in ONE transaction
together with the projection's position. The transaction first locks the position row and checks
it is still where this projector left it, so a crash at any point - or a second projector on the
same tables - can neither lose a batch nor apply one twice: on restart the projector continues
after the last committed position.

It follows the log with the followers' loop (``ledger_service.follow``: NOTIFY wake-up,
poll fallback, an unreachable database waited out, bugs raised for the supervisor), but keeps its
position in its own read-model schema (``rm_projection_positions``), not in the followers'
``ledger_follower_positions``. That is deliberate: the position must commit in the same
transaction as the rows it describes, and ``ledger replay`` rebuilds a whole schema - tables and
position together - and swaps it in atomically. A position outside the schema could neither
commit with the rows nor be swapped with them; the followers' positions, conversely, must
survive a replay (or it would re-send notifications), so one table cannot serve both.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
import structlog
from eventsourcing.persistence import Notification

from ledger_service import metrics
from ledger_service.domain.topup import TopupRequest
from ledger_service.domain.wallet import Wallet
from ledger_service.follow import FollowLoop, ListenConnect, Wakeup
from projections import migrations
from projections.builder import PROJECTED_TOPIC_PREFIXES, BatchBuilder, needs_loading
from projections.migrations import SETUP_LOCK_ID
from projections.tables import PROJECTION_NAME, ReadModelTables
from projections.writer import RowWriter

log = structlog.get_logger(__name__)

Connect = Callable[[], psycopg.Connection[Any]]
TOPUP_STEPS: dict[type[Any], str] = {
    TopupRequest.Requested: "requested",
    TopupRequest.Flagged: "needs_review",
    TopupRequest.Invoiced: "invoiced",
    TopupRequest.Completed: "completed",
    TopupRequest.Rejected: "rejected",
    TopupRequest.Cancelled: "cancelled",
}
"""The top-up events that move a request to a status (``ledger_topup_steps_total``)."""
BeforeCommit = Callable[[int], None]


class NotificationSource(Protocol):
    """The event store's notification log (the library's application recorder)."""

    channel_name: str

    def select_notifications(
        self, start: int | None, limit: int, stop: int | None = None
    ) -> Sequence[Notification]: ...

    def max_notification_id(self) -> int | None: ...


class EventMapper(Protocol):
    def to_domain_event(self, stored_event: Notification) -> Any: ...


class Projector:
    """Builds every read model of ``tables`` from the notification log."""

    def __init__(
        self,
        connect: Connect,
        source: NotificationSource,
        mapper: EventMapper,
        *,
        tables: ReadModelTables | None = None,
        batch_size_max: int = 1000,
        name: str = PROJECTION_NAME,
        before_commit: BeforeCommit | None = None,
        listen: ListenConnect | None = None,
    ) -> None:
        self.connect = connect
        self.source = source
        self.mapper = mapper
        self.tables = tables or ReadModelTables()
        self.batch_size_max = batch_size_max
        self.name = name
        self.before_commit = before_commit
        self.listen = listen
        """Opens the connection that LISTENs for new events; None: poll only."""
        self._conn: psycopg.Connection[Any] | None = None
        self._position: int | None = None
        self.rows = RowWriter(self.tables)

    # -- connection and position ----------------------------------------------------------

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self.connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def setup(self, *, migrate: bool = True) -> None:
        """Bring the tables to this release's version (``migrate``), or refuse to go on with
        tables of another (``projections.migrations``); then this projection's position row.

        Serialised by an advisory lock: DDL run concurrently (an API replica and a projector
        starting together) can fail on the catalogue's unique index.
        """
        if migrate:
            migrations.migrate(self.conn, self.tables)
        else:
            migrations.check(self.conn, self.tables)
        with self.conn.transaction():
            self.conn.execute(
                f"INSERT INTO {self.tables['rm_projection_positions']} (name, position) "
                "VALUES (%s, 0) ON CONFLICT (name) DO NOTHING",
                (self.name,),
            )

    def position(self) -> int:
        row = self.conn.execute(
            f"SELECT position FROM {self.tables['rm_projection_positions']} WHERE name = %s",
            (self.name,),
        ).fetchone()
        self.conn.commit()
        return int(row[0]) if row else 0

    # -- projecting -----------------------------------------------------------------------

    def project_batch(self, stop: int | None = None) -> int:
        """Project the next batch (up to ``stop`` inclusive); the number of notifications."""
        while True:
            if self._position is None:
                self._position = self.position()
            start = self._position + 1
            if stop is not None and start > stop:
                return 0
            notifications = self.source.select_notifications(start, self.batch_size_max, stop)
            if not notifications:
                return 0
            started = time.perf_counter()
            events = self._decode(notifications)
            last = notifications[-1].id
            if self._commit_batch(events, last):
                self._observe(len(notifications), last, events, started)
                return len(notifications)
            # Another projector moved the position: go on from where it left off.

    def _decode(self, notifications: Sequence[Notification]) -> list[tuple[int, Any]]:
        """(position, domain event) of the notifications that change a read model."""
        return [
            (n.id, self.mapper.to_domain_event(n))
            for n in notifications
            if n.topic.startswith(PROJECTED_TOPIC_PREFIXES)
        ]

    def catch_up(self, stop: int | None = None) -> int:
        """Project until the log is exhausted (or ``stop`` is reached); the position."""
        while self.project_batch(stop):
            pass
        return self._position or 0

    def _commit_batch(self, events: list[tuple[int, Any]], last: int) -> bool:
        """Write one batch and the new position atomically; False if the position moved."""
        positions = self.tables["rm_projection_positions"]
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                # Shared with other batches, exclusive with setup's DDL (CREATE INDEX IF NOT
                # EXISTS and migrations lock tables): the two never interleave into a deadlock.
                cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (SETUP_LOCK_ID,))
                cur.execute(
                    f"SELECT position FROM {positions} WHERE name = %s FOR UPDATE", (self.name,)
                )
                row = cur.fetchone()
                committed = int(row[0]) if row else 0
                if committed != self._position:
                    raise _PositionMoved(committed)
                builder = self.rows.load(cur, events)
                for position, event in events:
                    builder.apply(position, event)
                self.rows.write(cur, builder)
                cur.execute(
                    f"UPDATE {positions} SET position = %s, updated_at = now() WHERE name = %s",
                    (last, self.name),
                )
                if self.before_commit is not None:
                    self.before_commit(last)
        except _PositionMoved as moved:
            log.warning("projection_position_moved", name=self.name, position=moved.position)
            self._position = moved.position
            return False
        self._position = last
        return True

    def _observe(
        self, count: int, last: int, events: list[tuple[int, Any]], started: float
    ) -> None:
        metrics.PROJECTION_EVENTS.inc(count)
        metrics.PROJECTION_POSITION.set(last)
        metrics.PROJECTION_BATCH_SECONDS.observe(time.perf_counter() - started)
        if events:
            written_at = events[-1][1].timestamp
            lag = (datetime.now(UTC) - written_at).total_seconds()
            metrics.PROJECTION_LAG_SECONDS.observe(max(lag, 0.0))
        for _, event in events:
            step = TOPUP_STEPS.get(type(event))
            if step is not None:
                metrics.TOPUP_STEPS.labels(step).inc()
            elif type(event) is Wallet.AlertRaised:
                metrics.ALERTS_RAISED.labels(event.alert).inc()

    # -- rebuilding into private tables (ledger replay) --------------------------------------

    def rebuild(
        self,
        stop: int | None = None,
        progress: Callable[[int], None] | None = None,
        state_rows_max: int = 100_000,
    ) -> int:
        """Project the log (up to ``stop``) into tables NOBODY else reads or writes - a fresh
        replay schema that is dropped on any failure; the number of notifications.

        Unlike ``project_batch``, the wallet, top-up, usage and account rows stay in memory
        from one section of the log to the next and are upserted only when more than
        ``state_rows_max`` of them are held (and at the end): the live path re-loads and
        re-upserts about one row per four events on every batch. The result is the same
        rows, because the rows applied to are the same (carried in memory instead of read
        back) and the upserts accumulate exactly as they do between live batches. Ledger
        entries are copied section by section, so memory stays bounded. In between, the
        position row lags the entries: harmless, as the tables are swapped in only complete.
        """
        start = self.position() + 1
        builder = BatchBuilder(wallets={}, topups={})
        count = 0
        while stop is None or start <= stop:
            notifications = self.source.select_notifications(start, self.batch_size_max, stop)
            if not notifications:
                break
            start = notifications[-1].id + 1
            builder = self._rebuild_section(builder, notifications, state_rows_max)
            count += len(notifications)
            if progress is not None:
                progress(count)
        with self.conn.transaction(), self.conn.cursor() as cur:
            self._flush_state(cur, builder, start - 1)
        return count

    def _rebuild_section(
        self, builder: BatchBuilder, notifications: Sequence[Notification], state_rows_max: int
    ) -> BatchBuilder:
        """Apply one section of the log to ``builder`` and copy its entries and alerts; the
        builder to go on with (a fresh one once the held rows were flushed)."""
        events = self._decode(notifications)
        with self.conn.transaction(), self.conn.cursor() as cur:
            self._load_missing(cur, builder, events)
            for position, event in events:
                builder.apply(position, event)
            # A builder holding only the entries and alerts writes only those.
            self.rows.write(
                cur,
                BatchBuilder(wallets={}, topups={}, entries=builder.entries, alerts=builder.alerts),
            )
            builder.entries, builder.alerts = [], []
            if _state_rows(builder) > state_rows_max:
                self._flush_state(cur, builder, notifications[-1].id)
                return BatchBuilder(wallets={}, topups={})
        return builder

    def _load_missing(
        self, cur: psycopg.Cursor[Any], builder: BatchBuilder, events: list[tuple[int, Any]]
    ) -> None:
        """Load the rows ``events`` update that ``builder`` does not hold yet."""
        missing = []
        for position, event in events:
            load = needs_loading(event)
            if load is not None:
                held = builder.wallets if load[0] == "wallet" else builder.topups
                if load[1] not in held:
                    missing.append((position, event))
        if missing:
            loaded = self.rows.load(cur, missing)
            builder.wallets.update(loaded.wallets)
            builder.topups.update(loaded.topups)

    def _flush_state(self, cur: psycopg.Cursor[Any], builder: BatchBuilder, last: int) -> None:
        self.rows.write(cur, builder)
        cur.execute(
            f"UPDATE {self.tables['rm_projection_positions']} "
            "SET position = %s, updated_at = now() WHERE name = %s",
            (last, self.name),
        )
        self._position = last

    # -- following ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, poll_interval_s: float = 0.5) -> None:
        """Project new events until ``stop`` is set (see the module's docstring); the batch in
        flight commits or rolls back, never half-applies."""
        wakeup = None if self.listen is None else Wakeup(self.listen, self.source.channel_name)
        loop = FollowLoop(self.name, wakeup, poll_interval_s=poll_interval_s)
        try:
            await loop.run(self._step, stop)
        finally:
            self.close()

    async def _step(self) -> bool:
        try:
            return bool(await asyncio.to_thread(self.project_batch))
        except psycopg.OperationalError:
            self.close()  # broken: the next step connects afresh
            raise

    def follow(self, stopping: threading.Event, poll_interval_s: float = 0.5) -> None:
        """``run`` for a thread of its own, until ``stopping`` is set."""
        asyncio.run(self._follow(stopping, poll_interval_s))

    async def _follow(self, stopping: threading.Event, poll_interval_s: float) -> None:
        stop = asyncio.Event()
        mirror = asyncio.create_task(_mirror(stopping, stop))
        try:
            await self.run(stop, poll_interval_s)
        finally:
            mirror.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await mirror


async def _mirror(stopping: threading.Event, stop: asyncio.Event) -> None:
    """Set ``stop`` once ``stopping`` (set by another thread) is."""
    while not stopping.is_set():
        await asyncio.sleep(0.05)
    stop.set()


def _state_rows(builder: BatchBuilder) -> int:
    return len(builder.wallets) + len(builder.topups) + len(builder.usage) + len(builder.accounts)


class _PositionMoved(Exception):
    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


async def follow_until_stopped(
    projector: Projector, stop: asyncio.Event, poll_interval_s: float = 0.5
) -> None:
    """``projector.run``: the runner's worker for the projections."""
    await projector.run(stop, poll_interval_s)
