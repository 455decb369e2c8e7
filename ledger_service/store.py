"""The event store: eventsourcing's Postgres recorder plus the ledger's atomic side-records.

``LedgerRecorder`` is the library's process recorder (default, table-locking insert mode; never
``POSTGRES_ENABLE_DB_FUNCTIONS``) extended with two tables written *inside the same transaction*
as the events:

* ``ledger_commands`` - idempotency records of commands: (scope, key) -> fingerprint, result and
  the position of the command's last event. Inserted *before* the events, so that a key
  recorded concurrently fails the whole transaction (the library commits the events when an
  error is raised after them, in ``_fetch_ids_after_insert_events``), then given the position
  once the events' notification ids are known.
* ``ledger_usage_keys`` - CloudEvents (source, id) of every usage event that changed a balance.
  The primary key makes a second application of the same usage event impossible: the whole
  transaction fails and the writer re-filters.

Both are passed as keyword arguments of ``Application.save(...)``, which the library forwards to
``insert_events``.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from eventsourcing.postgres import PostgresProcessRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from ledger_service.service.runner import CommandRecord, UsageKey

COMMANDS_TABLE = "ledger_commands"
STORE_DDL_LOCK_ID = 0x6C65_6467_6573  # serialises the event store's DDL across processes
USAGE_KEYS_TABLE = "ledger_usage_keys"


class LedgerRecorder(PostgresProcessRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._jit_off: weakref.WeakSet[Any] = weakref.WeakSet()
        schema = Identifier(self.datastore.schema)
        commands = Identifier(COMMANDS_TABLE)
        usage = Identifier(USAGE_KEYS_TABLE)
        self.sql_create_statements.extend(
            [
                SQL(
                    "CREATE TABLE IF NOT EXISTS {}.{} ("
                    "scope text NOT NULL, key text NOT NULL, fingerprint text NOT NULL, "
                    "result jsonb NOT NULL, position bigint, "
                    "recorded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (scope, key))"
                ).format(schema, commands),
                SQL(
                    "CREATE TABLE IF NOT EXISTS {}.{} ("
                    "source text NOT NULL, event_id text NOT NULL, company_id text NOT NULL, "
                    "recorded_at timestamptz NOT NULL DEFAULT now(), "
                    "PRIMARY KEY (source, event_id))"
                ).format(schema, usage),
                # Added for refunds; rows written before have NULLs (see UsageKey).
                SQL(
                    "ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS wallet_id uuid, "
                    "ADD COLUMN IF NOT EXISTS wallet_version bigint"
                ).format(schema, usage),
            ]
        )
        self._insert_command = SQL(
            "INSERT INTO {}.{} (scope, key, fingerprint, result) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1"
        ).format(schema, commands)
        self._set_command_position = SQL(
            "UPDATE {}.{} SET position = %s WHERE scope = %s AND key = %s"
        ).format(schema, commands)
        self._select_command = SQL(
            "SELECT scope, key, fingerprint, result, position FROM {}.{} "
            "WHERE scope = %s AND key = %s"
        ).format(schema, commands)
        self._insert_usage_keys = SQL(
            "INSERT INTO {}.{} (source, event_id, company_id, wallet_id, wallet_version) "
            "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::uuid[], %b::bigint[])"
        ).format(schema, usage)
        # Same rows, same order, same RETURNING as the library's insert, but as four parallel
        # arrays sent in binary: the library's text-format array of composites escapes every
        # bytea with regular expressions, which was a fifth of ingestion CPU time.
        insert_events = SQL(
            "INSERT INTO {}.{} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[])"
        ).format(schema, Identifier(self.events_table_name))
        self._insert_events_binary = insert_events + SQL(" RETURNING notification_id")
        # A save that does not need its events' notification ids (``returning_ids=False``:
        # the consumer's) skips the returned rows and the objects the library makes of them.
        self._insert_events_binary_no_ids = insert_events
        # Composed once: the library composes its NOTIFY for every save.
        self._notify_statement = SQL("NOTIFY {}").format(Identifier(self.channel_name))
        self._select_usage_keys = SQL(
            "SELECT k.source, k.event_id FROM {}.{} k "
            "JOIN unnest(%s::text[], %s::text[]) AS q(source, event_id) "
            "ON k.source = q.source AND k.event_id = q.event_id"
        ).format(schema, usage)
        # One range scan of the events' primary key per aggregate, forced by LATERAL (OFFSET 0
        # keeps the planner from flattening it back into a join): as a plain join the planner
        # merge-joined the whole index when its statistics were stale (a freshly filled table:
        # 380 ms for 300 wallets among 200,000 events).
        self._select_events_after = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state "
            "FROM unnest(%b::uuid[], %b::bigint[]) AS q(id, version) CROSS JOIN LATERAL ("
            "SELECT originator_id, originator_version, topic, state FROM {}.{} "
            "WHERE originator_id = q.id AND originator_version > q.version OFFSET 0) e "
            "ORDER BY e.originator_id, e.originator_version"
        ).format(schema, Identifier(self.events_table_name))
        self._select_usage_charges = SQL(
            "SELECT k.source, k.event_id, k.company_id, k.wallet_id, k.wallet_version "
            "FROM {}.{} k JOIN unnest(%s::text[], %s::text[]) AS q(source, event_id) "
            "ON k.source = q.source AND k.event_id = q.event_id"
        ).format(schema, usage)

    # -- writes, inside the library's insert transaction ----------------------------------

    def _insert_stored_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        # Keep the library's serialisation: the EXCLUSIVE table lock makes commit order equal
        # notification order, so projections following the log never skip an event.
        self._lock_table(curs)
        self._notify_channel(curs)
        returning_ids = kwargs.get("returning_ids", True)
        curs.execute(
            self._insert_events_binary if returning_ids else self._insert_events_binary_no_ids,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
        )

    def _notify_channel(self, curs: Cursor[DictRow]) -> None:
        curs.execute(self._notify_statement)

    def _create_table(self, curs: Cursor[DictRow]) -> None:
        """The library's DDL and ours, one process at a time: ``ADD COLUMN IF NOT EXISTS`` run
        concurrently fails with "tuple concurrently updated" even when the column exists."""
        curs.execute("SELECT pg_advisory_xact_lock(%s)", (STORE_DDL_LOCK_ID,))
        super()._create_table(curs)

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        # The command's key first: raised here, a key recorded concurrently rolls back the whole
        # transaction (raised after the events, the library would still commit them).
        command: CommandRecord | None = kwargs.get("command")
        if command is not None:
            curs.execute(
                self._insert_command,
                (command.scope, command.key, command.fingerprint, json.dumps(command.result)),
            )
            if curs.fetchone() is None:
                raise IntegrityError(f"idempotency key {command.key!r} was recorded concurrently")
        # The consumed Kafka position (the next offset of a partition), in the same transaction
        # as the deductions it produced. Single-row tracking only moves forward, so a consumer
        # that lost its partition in a rebalance cannot record an older position.
        consumer_position: Tracking | None = kwargs.get("consumer_position")
        if consumer_position is not None:
            self._insert_tracking(curs, consumer_position)
        usage_keys: Sequence[tuple[Any, ...]] = kwargs.get("usage_keys") or ()
        if usage_keys:
            # Plain 3-tuples (source, id, company) are accepted as UsageKeys without a charge.
            columns = zip(*(UsageKey(*key) for key in usage_keys), strict=True)
            # A key applied before violates the primary key: the pipeline's sync after the
            # events raises it (as IntegrityError) and the whole transaction rolls back. A plain
            # INSERT, not ON CONFLICT DO NOTHING and a count: a third cheaper, and no sync of
            # its own before the events are sent.
            curs.execute(self._insert_usage_keys, [list(column) for column in columns])

    def _fetch_ids_after_insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> Sequence[int] | None:
        if not kwargs.get("returning_ids", True):
            return None  # nothing was returned (see _insert_events_binary_no_ids)
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        command: CommandRecord | None = kwargs.get("command")
        if command is not None and ids:
            curs.execute(self._set_command_position, (max(ids), command.scope, command.key))
        return ids

    # -- reads ----------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[Cursor[DictRow]]:
        """A cursor on a pooled autocommit connection, for one read-only statement.

        No BEGIN/ROLLBACK around it: one statement is atomic on its own, it saves two round
        trips, and no transaction is left idle if the thread stalls (on an overloaded host a
        thread waiting for the GIL between BEGIN and SELECT outlived the server's
        idle-in-transaction timeout, which then killed the connection)."""
        with self.datastore.get_connection() as conn:
            yield conn.cursor()

    def select_command(self, scope: str, key: str) -> CommandRecord | None:
        with self._reading() as curs:
            curs.execute(self._select_command, (scope, key), prepare=True)
            row = curs.fetchone()
        if row is None:
            return None
        return CommandRecord(
            row["scope"], row["key"], row["fingerprint"], row["result"], row["position"]
        )

    def select_positions(self, originator_id: UUID) -> list[tuple[int, int]]:
        """(version, notification id) of every event of one aggregate, in version order."""
        with self._reading() as curs:
            curs.execute(
                SQL(
                    "SELECT originator_version, notification_id FROM {}.{} "
                    "WHERE originator_id = %s ORDER BY originator_version"
                ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name)),
                (originator_id,),
            )
            return [(row["originator_version"], row["notification_id"]) for row in curs.fetchall()]

    def forget_consumer_positions(self, prefix: str) -> int:
        """Drop recorded consumer positions whose name starts with ``prefix`` (the topic
        restarted empty); returns how many were dropped."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("DELETE FROM {}.{} WHERE starts_with(application_name, %s)").format(
                    Identifier(self.datastore.schema), Identifier(self.tracking_table_name)
                ),
                (prefix,),
            )
            return curs.rowcount

    def select_applied_usage_keys(
        self,
        keys: Iterable[tuple[str, str]],
    ) -> set[tuple[str, str]]:
        pairs = list(keys)
        if not pairs:
            return set()
        sources, event_ids = (list(column) for column in zip(*pairs, strict=True))
        with self._reading() as curs:
            curs.execute(self._select_usage_keys, (sources, event_ids))
            return {(row["source"], row["event_id"]) for row in curs.fetchall()}

    def select_usage_charges(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], UsageKey]:
        """The recorded usage keys among ``keys``, with where each was charged."""
        pairs = list(keys)
        if not pairs:
            return {}
        sources, event_ids = (list(column) for column in zip(*pairs, strict=True))
        with self._reading() as curs:
            curs.execute(self._select_usage_charges, (sources, event_ids))
            return {
                (row["source"], row["event_id"]): UsageKey(
                    row["source"],
                    row["event_id"],
                    row["company_id"],
                    row["wallet_id"],
                    row["wallet_version"],
                )
                for row in curs.fetchall()
            }

    def _without_jit(self, curs: Cursor[DictRow]) -> None:
        """Turn PostgreSQL's JIT off on this pooled connection (once per connection). With
        stale statistics (a table just filled) the per-aggregate scans above are estimated at
        millions of rows, and compiling them took 140 ms for a 6 ms query. The service's
        statements are all short: none gains from JIT."""
        connection = curs.connection
        if connection not in self._jit_off:
            curs.execute("SET jit = off")
            self._jit_off.add(connection)

    def select_latest_snapshots(self, table: str, ids: Sequence[UUID]) -> list[StoredEvent]:
        """The newest snapshot of each of ``ids`` that has one, from the snapshot ``table``,
        in one statement (its primary key, once per aggregate)."""
        if not ids:
            return []
        query = SQL(
            "SELECT s.originator_id, s.originator_version, s.topic, s.state "
            "FROM unnest(%b::uuid[]) AS q(id) CROSS JOIN LATERAL ("
            "SELECT * FROM {}.{} WHERE originator_id = q.id "
            "ORDER BY originator_version DESC LIMIT 1) s"
        ).format(Identifier(self.datastore.schema), Identifier(table))
        with self.datastore.get_connection() as conn, conn.cursor(binary=True) as curs:
            curs.execute(query, (list(ids),), prepare=True)
            return [_stored_event(row) for row in curs.fetchall()]

    def select_events_after(self, versions: Mapping[UUID, int]) -> list[StoredEvent]:
        """The events of several aggregates after the given versions, in one statement
        (by aggregate, then version): brings cached aggregates up to date in one round trip."""
        if not versions:
            return []
        with self.datastore.get_connection() as conn, conn.cursor(binary=True) as curs:
            self._without_jit(curs)
            curs.execute(
                self._select_events_after, (list(versions), list(versions.values())), prepare=True
            )
            return [_stored_event(row) for row in curs.fetchall()]


def _stored_event(row: DictRow) -> StoredEvent:
    return StoredEvent(
        originator_id=row["originator_id"],
        originator_version=row["originator_version"],
        topic=row["topic"],
        state=bytes(row["state"]),
    )
