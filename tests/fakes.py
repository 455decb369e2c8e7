"""Fakes that implement the real interfaces, for unit tests (never for integration tests)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, IntegrityError, StoredEvent, Tracking
from eventsourcing.popo import POPOAggregateRecorder, POPOProcessRecorder

from ledger_service.service.ledger import LedgerApplication
from ledger_service.service.runner import CommandRecord, UsageKey


class InMemoryLedgerRecorder(POPOProcessRecorder):
    """The library's in-memory recorder plus the ledger's command records and usage keys,
    checked and written under the same lock as the events (as Postgres does in one
    transaction)."""

    def __init__(self) -> None:
        super().__init__()
        self.commands: dict[tuple[str, str], CommandRecord] = {}
        self.usage_keys: dict[tuple[str, str], UsageKey] = {}
        self.snapshot_recorder: POPOAggregateRecorder | None = None
        """The application's snapshot store, set by ``InMemoryLedger`` (Postgres names it by
        its table instead)."""

    def _assert_uniqueness(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._assert_uniqueness(stored_events, **kwargs)
        command: CommandRecord | None = kwargs.get("command")
        if command is not None and (command.scope, command.key) in self.commands:
            raise IntegrityError("command key already recorded")
        for source, event_id, *_ in kwargs.get("usage_keys") or ():
            if (source, event_id) in self.usage_keys:
                raise IntegrityError("usage already applied")
        position: Tracking | None = kwargs.get("consumer_position")
        if position is not None:
            self._assert_tracking_uniqueness(position)

    def _update_table(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._update_table(stored_events, **kwargs)
        command: CommandRecord | None = kwargs.get("command")
        if command is not None:
            # Round-trip through JSON like the jsonb column does.
            result = json.loads(json.dumps(command.result))
            self.commands[(command.scope, command.key)] = CommandRecord(
                command.scope,
                command.key,
                command.fingerprint,
                result,
                max(ids) if ids else None,
            )
        for key in kwargs.get("usage_keys") or ():
            usage_key = UsageKey(*key)
            self.usage_keys[(usage_key.source, usage_key.event_id)] = usage_key
        position: Tracking | None = kwargs.get("consumer_position")
        if position is not None:
            self._insert_tracking(position)
        return ids

    def select_positions(self, originator_id: UUID) -> list[tuple[int, int]]:
        with self._database_lock:
            # The in-memory notification id is the 1-based index in the stored list.
            return [
                (s.originator_version, i)
                for i, s in enumerate(self._stored_events, 1)
                if s.originator_id == originator_id
            ]

    def select_events_after(self, versions: Mapping[UUID, int]) -> list[StoredEvent]:
        with self._database_lock:
            found = [
                s
                for s in self._stored_events
                if s.originator_version > versions.get(s.originator_id, s.originator_version)
            ]
        return sorted(found, key=lambda s: (str(s.originator_id), s.originator_version))

    def select_latest_snapshots(self, table: str, ids: Sequence[UUID]) -> list[StoredEvent]:
        if self.snapshot_recorder is None:
            return []
        found = (self.snapshot_recorder.select_events(id_, desc=True, limit=1) for id_ in ids)
        return [snapshots[0] for snapshots in found if snapshots]

    def select_command(self, scope: str, key: str) -> CommandRecord | None:
        with self._database_lock:
            return self.commands.get((scope, key))

    def forget_consumer_positions(self, prefix: str) -> int:
        with self._database_lock:
            names = [n for n in self._max_tracking_ids if n.startswith(prefix)]
            for name in names:
                del self._max_tracking_ids[name]
            return len(names)

    def select_applied_usage_keys(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        with self._database_lock:
            return {key for key in keys if key in self.usage_keys}

    def select_usage_charges(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], UsageKey]:
        with self._database_lock:
            return {key: self.usage_keys[key] for key in keys if key in self.usage_keys}


INGESTION_CACHE_ENV = {
    "AGGREGATE_CACHE_MAXSIZE": "1000",
    "AGGREGATE_CACHE_FASTFORWARD": "n",
    "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
}


class InMemoryLedger(LedgerApplication):
    """The application on the in-memory store. Pass another instance's ``shared_recorder`` to
    get a second application over the same store (like two processes on one database), and
    ``cached=True`` for the ingestion cache settings (no re-read of cached aggregates)."""

    def __init__(
        self, shared_recorder: InMemoryLedgerRecorder | None = None, *, cached: bool = False
    ) -> None:
        self._shared_recorder = shared_recorder
        env = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        super().__init__(env=env | INGESTION_CACHE_ENV if cached else env)
        if isinstance(self.recorder, InMemoryLedgerRecorder) and self.snapshots is not None:
            self.recorder.snapshot_recorder = cast(POPOAggregateRecorder, self.snapshots.recorder)

    def construct_recorder(self) -> ApplicationRecorder:
        return self._shared_recorder or InMemoryLedgerRecorder()
