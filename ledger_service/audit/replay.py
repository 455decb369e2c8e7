"""`ledger replay`: rebuild the read models from the event store, then swap them in at once.

The rebuild projects the whole history (or up to ``to_position``) into tables in a fresh
schema, while the live read models keep serving. Then ONE transaction drops the live tables and
moves the rebuilt ones (with their indexes and projection position) into the live schema, so a
reader sees either the old tables or the complete new ones, never a half-built model. The live
projector notices its position row moved and continues from the rebuilt position.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from ledger_service.service.ledger import LedgerApplication
from projections.migrations import MIGRATIONS_TABLE, SETUP_LOCK_ID
from projections.projector import NotificationSource, Projector
from projections.tables import ALL_TABLES, ENTRIES, ReadModelTables

log = structlog.get_logger(__name__)

Connect = Callable[[], psycopg.Connection[Any]]

DEFERRED_INDEX_TABLES = (ENTRIES,)
"""Tables of the rebuild whose primary key and indexes are built once after the load (one sort
each) instead of being maintained row by row: the ledger entries, one row per money event."""


@dataclass(frozen=True)
class ReplayResult:
    events: int
    position: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def replay(
    ledger: LedgerApplication,
    connect: Connect,
    *,
    live_schema: str,
    to_position: int | None = None,
    # Large batches: per-key upserts (wallets, usage days, accounts) are paid once per batch.
    batch_size_max: int = 20_000,
    # Wallet/top-up/usage/account rows held in memory before they are written (see rebuild).
    state_rows_max: int = 100_000,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    build = ReadModelTables(f"rm_replay_{uuid.uuid4().hex[:10]}")
    projector = Projector(
        connect,
        _notification_log(ledger),
        ledger.mapper,
        tables=build,
        batch_size_max=batch_size_max,
    )
    started = time.perf_counter()
    events = 0
    try:
        projector.setup()
        recreate = _drop_indexes(projector.conn, build)
        with _rare_garbage_collections():
            events = projector.rebuild(
                stop=to_position, progress=progress, state_rows_max=state_rows_max
            )
        with projector.conn.transaction():
            for statement in recreate:
                projector.conn.execute(statement)
        seconds = time.perf_counter() - started
        position = projector.position()
    except BaseException:
        projector.close()
        _drop_schema(connect, build.schema)
        raise
    projector.close()
    swap_in(connect, build.schema, live_schema)
    log.info(
        "read_models_replayed",
        events=events,
        position=position,
        events_per_s=round(events / seconds) if seconds else None,
    )
    return ReplayResult(events, position, seconds)


def _notification_log(ledger: LedgerApplication) -> NotificationSource:
    recorder = ledger.recorder
    if isinstance(recorder, PostgresApplicationRecorder):
        return BinaryNotificationLog(recorder)
    return recorder  # type: ignore[return-value]


class BinaryNotificationLog:
    """The event store's notification log, read for a rebuild: the rows and order of the
    recorder's ``select_notifications`` (same table, same connection pool), fetched in binary
    format as tuples. A rebuild reads every event, and the text format hex-encodes each stored
    state on the server and decodes it again here, and a row is first made a dict."""

    def __init__(self, recorder: PostgresApplicationRecorder) -> None:
        self.recorder = recorder
        self.channel_name = recorder.channel_name
        self._select = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{table} WHERE notification_id >= %s"
        ).format(
            schema=Identifier(recorder.datastore.schema),
            table=Identifier(recorder.events_table_name),
        )

    def select_notifications(
        self, start: int | None, limit: int, stop: int | None = None
    ) -> list[Notification]:
        statement, params = self._select, [start or 1]
        if stop is not None:
            statement += SQL(" AND notification_id <= %s")
            params.append(stop)
        statement += SQL(" ORDER BY notification_id LIMIT %s")
        params.append(limit)
        with (
            self.recorder.datastore.get_connection() as conn,
            conn.cursor(binary=True, row_factory=tuple_row) as cur,
        ):
            cur.execute(statement, params, prepare=True)
            return [
                Notification(
                    id=row[0],
                    originator_id=row[1],
                    originator_version=row[2],
                    topic=row[3],
                    state=row[4],
                )
                for row in cur
            ]

    def max_notification_id(self) -> int | None:
        head = self.recorder.max_notification_id()
        return None if head is None else int(head)


def swap_in(connect: Connect, build_schema: str, live_schema: str) -> None:
    """Replace the live read-model tables by the rebuilt ones, atomically."""
    live = ReadModelTables(live_schema)
    with connect() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SETUP_LOCK_ID,))
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{live.schema}"')
        # The rebuilt tables are of this release's version: their migration record comes along.
        for table in (*ALL_TABLES, MIGRATIONS_TABLE):
            conn.execute(f'DROP TABLE IF EXISTS "{live.schema}".{table}')
            conn.execute(f'ALTER TABLE "{build_schema}".{table} SET SCHEMA "{live.schema}"')
        conn.execute(f'DROP SCHEMA "{build_schema}"')


@contextmanager
def _rare_garbage_collections(allocations_max: int = 100_000) -> Iterator[None]:
    """Run Python's cycle collector after ``allocations_max`` net allocations instead of 700.

    A rebuild allocates millions of objects that live for one section (events, their state
    dicts, entry rows) and form no cycles: reference counting frees them. At the default
    threshold the collector keeps running over them and, as they survive into the older
    generations, over the whole heap; that cost a third of the replay time. The collector
    stays on (cycles are still collected), only less often. The threshold is process-wide,
    so it is restored when the rebuild ends, however it ends.
    """
    threshold = gc.get_threshold()
    gc.set_threshold(allocations_max, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


def _drop_indexes(conn: psycopg.Connection[Any], tables: ReadModelTables) -> list[str]:
    """Drop the (still empty) keys and indexes of ``DEFERRED_INDEX_TABLES``; the statements
    that recreate them as the DDL made them (read back from the catalogue, not repeated)."""
    recreate: list[str] = []
    with conn.transaction():
        for table in DEFERRED_INDEX_TABLES:
            name = tables[table]
            keys = conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype IN ('p', 'u') ORDER BY conname",
                (name,),
            ).fetchall()
            indexes = conn.execute(
                "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i "
                "WHERE indrelid = %s::regclass AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY 1",
                (name,),
            ).fetchall()
            for key, definition in keys:
                conn.execute(f'ALTER TABLE {name} DROP CONSTRAINT "{key}"')
                recreate.append(f'ALTER TABLE {name} ADD CONSTRAINT "{key}" {definition}')
            for index, definition in indexes:
                conn.execute(f"DROP INDEX {index}")
                recreate.append(definition)
    return recreate


def _drop_schema(connect: Connect, schema: str) -> None:
    with connect() as conn, conn.transaction():
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
