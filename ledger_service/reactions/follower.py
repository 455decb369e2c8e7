"""Reads the notification log after a tracked position, a bounded batch of chosen topics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.persistence import Notification

from ledger_service.reactions.positions import FollowerPositions


class NotificationSource(Protocol):
    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
    ) -> Sequence[Notification]: ...

    def max_notification_id(self) -> int | None: ...


class EventMapper(Protocol):
    def to_domain_event(self, stored_event: Notification) -> Any: ...


@dataclass(frozen=True)
class Batch:
    events: list[tuple[int, Any]]
    """(notification id, domain event) of the chosen topics, in log order."""
    through: int
    """The log position this batch covers up to (inclusive): save it once handled."""


@dataclass
class LogFollower:
    name: str
    source: NotificationSource
    mapper: EventMapper
    positions: FollowerPositions
    topics: tuple[str, ...]
    batch_size_max: int = 500

    def next_batch(self) -> Batch | None:
        """The next events of ``topics``; None when the log has nothing new at all.

        The scan is bounded by the log head read first, so a long stretch without any chosen
        event still moves the position (instead of re-scanning it on every poll)."""
        position = self.positions.get(self.name)
        head = self.source.max_notification_id() or 0
        if head <= position:
            return None
        found = self.source.select_notifications(
            position + 1, self.batch_size_max, stop=head, topics=self.topics
        )
        through = found[-1].id if len(found) == self.batch_size_max else head
        return Batch([(n.id, self.mapper.to_domain_event(n)) for n in found], through)

    def done(self, batch: Batch) -> None:
        self.positions.advance(self.name, batch.through)
