"""Reading the event history in notification order, with positions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ledger_service.service.ledger import LedgerApplication

SECTION_SIZE = 5000


@dataclass(frozen=True, slots=True)
class Positioned:
    position: int
    event: Any


def history(
    ledger: LedgerApplication,
    *,
    start: int = 1,
    stop: int | None = None,
    topics: tuple[str, ...] = (),
) -> Iterator[Positioned]:
    """Every event from ``start`` (inclusive) to ``stop`` (inclusive), in global order."""
    while True:
        notifications = ledger.recorder.select_notifications(
            start=start, limit=SECTION_SIZE, stop=stop, topics=topics
        )
        for notification in notifications:
            yield Positioned(notification.id, ledger.mapper.to_domain_event(notification))
        if len(notifications) < SECTION_SIZE:
            return
        start = notifications[-1].id + 1
