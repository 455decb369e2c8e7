"""Kafka records as the ingestion core sees them, decoupled from the client library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ledger_service.domain.usage import Usage
from ledger_service.service.usage import DEDUCTION_FAILED

__all__ = ["DEDUCTION_FAILED", "Consumed", "DeadLetter", "position_name", "position_prefix"]


class Consumed(NamedTuple):
    """One Kafka record. A named tuple: one is built for every record polled, and a frozen
    dataclass costs three times as much to build."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that cannot be applied, with a machine-readable code and a sentence."""

    record: Consumed
    code: str
    message: str
    usage: Usage | None = None


def position_prefix(topic: str) -> str:
    return f"kafka:{topic}:"


def position_name(topic: str, partition: int) -> str:
    """Tracking name of a partition's consumed position in the event store."""
    return f"{position_prefix(topic)}{partition}"
