"""The one idempotency-and-retry unit around ``save()``.

Every command is a frozen dataclass (``Command``) that knows its idempotency scope, how to
decide (load aggregates, call their methods) and nothing about persistence. ``run_command``
gives each command the same guarantees:

* **Idempotent.** The key, a fingerprint of the command itself and the command's result are
  written by the event store *in the same transaction* as the command's events (see
  ``ledger_service.store``). A key is never claimed unless its events were written; a repeat
  returns the original result and writes nothing; the same key with another command is refused
  with ``IdempotencyConflict``.
* **Retried on conflicts.** Two commands that touch the same aggregate write the same version;
  the loser's save fails with the library's ``IntegrityError``. ``retry_on_conflict`` (the only
  retry loop of the service layer) evicts the stale aggregates, backs off, and lets the command
  decide again from fresh state, at most ``retry_count_max`` times; then ``ConcurrencyConflict``,
  having written nothing.
* **Library errors translated once.** ``IntegrityError`` never leaves this package; an
  unavailable database surfaces as ``StoreUnavailable`` (an outage, not the caller's fault).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar, cast
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, PersistenceError, StoredEvent

from ledger_service.domain.errors import (
    ConcurrencyConflict,
    IdempotencyConflict,
    InvalidArgument,
    LedgerError,
)
from ledger_service.domain.money import format_amount

if TYPE_CHECKING:
    from ledger_service.service.ledger import LedgerApplication

IDEMPOTENCY_KEY_LENGTH_MAX = 200
RETRY_BACKOFF_BASE_S = 0.002
NOT_FINGERPRINTED = frozenset({"actor", "idempotency_key"})
"""Who asked and under which key: the key's record, not the request it names."""

R = TypeVar("R")
T = TypeVar("T")


class StoreUnavailable(Exception):
    """The event store could not be reached. Not a ``LedgerError``: nobody's input was wrong,
    so callers wait and retry (the consumer) or answer with a server error (HTTP)."""


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """What the event store keeps of a command, written atomically with its events."""

    scope: str
    key: str
    fingerprint: str
    result: Mapping[str, Any]
    position: int | None = None


class UsageKey(NamedTuple):
    """An applied usage event, recorded with its deductions: the CloudEvents (source, id)
    can never be applied again. ``wallet_id``/``wallet_version`` locate its charge (the
    ``Debited`` entry), which a refund gives back; None when it charged nothing (status
    ``failed``)."""

    source: str
    event_id: str
    company_id: str
    wallet_id: UUID | None = None
    wallet_version: int | None = None


class CommandStore(Protocol):
    """The event store's extension that keeps command records and applied usage keys, written
    atomically with events (see ``store.LedgerRecorder``)."""

    def select_command(self, scope: str, key: str) -> CommandRecord | None: ...

    def select_applied_usage_keys(
        self, keys: Sequence[tuple[str, str]]
    ) -> set[tuple[str, str]]: ...

    def select_usage_charges(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], UsageKey]: ...

    def max_tracking_id(self, application_name: str) -> int | None: ...

    def forget_consumer_positions(self, prefix: str) -> int: ...

    def select_positions(self, originator_id: UUID) -> list[tuple[int, int]]: ...

    def select_events_after(self, versions: Mapping[UUID, int]) -> list[StoredEvent]: ...

    def select_latest_snapshots(self, table: str, ids: Sequence[UUID]) -> list[StoredEvent]: ...


@dataclass
class Decision(Generic[R]):
    """What a command decided: the aggregates to save and the result to return."""

    aggregates: Sequence[Aggregate]
    result: R


@dataclass(frozen=True, kw_only=True)
class Command(Generic[R]):
    """A request to change the ledger. Subclasses are frozen, keyword-only dataclasses whose
    fields are validated on construction, so a command that exists is well-formed.

    ``name`` is the command's stable name in idempotency fingerprints; ``fingerprint_omits``
    lists fields left out of the fingerprint because the scope already holds them (kept as the
    first release computed them, so keys recorded before the service layer still replay).
    """

    name: ClassVar[str]
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset()

    actor: str
    idempotency_key: str

    def scope(self, ledger: LedgerApplication) -> str:
        """The company whose keys this command's key is unique among."""
        raise NotImplementedError

    def decide(self, ledger: LedgerApplication) -> Decision[R]:
        """Load, decide, return what to save. May run several times (conflict retries)."""
        raise NotImplementedError

    def fingerprint_fields(self) -> dict[str, object]:
        """The fields that identify the request, by name (override to present a field in the
        shape the first release fingerprinted)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in NOT_FINGERPRINTED and f.name not in self.fingerprint_omits
        }

    def fingerprint(self) -> str:
        request = {name: _plain(value) for name, value in self.fingerprint_fields().items()}
        body = json.dumps({"command": self.name, **request}, sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()


def _plain(value: object) -> object:
    """A field as JSON-able data: amounts as their shortest decimal string, ids as text."""
    if isinstance(value, Decimal):
        return format_amount(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def check_idempotency_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > IDEMPOTENCY_KEY_LENGTH_MAX:
        raise InvalidArgument(f"idempotency key must be 1-{IDEMPOTENCY_KEY_LENGTH_MAX} characters")
    return key


def run_command(ledger: LedgerApplication, command: Command[R]) -> R:
    """Decide ``command`` and save its aggregates with its record, exactly once."""
    key = check_idempotency_key(command.idempotency_key)
    fingerprint = command.fingerprint()
    store = ledger.command_store

    def attempt() -> R:
        previous = store.select_command(scope, key)
        if previous is not None:
            return cast(R, _replayed(previous, fingerprint))
        try:
            decision = command.decide(ledger)
        except LedgerError:
            # A request with this key may have committed since we looked: its effects can
            # make ours invalid (a top-up already paid), yet the answer is its result.
            previous = store.select_command(scope, key)
            if previous is not None:
                return cast(R, _replayed(previous, fingerprint))
            raise
        result = cast(Mapping[str, Any], decision.result)
        record = CommandRecord(scope, key, fingerprint, result)
        with evicting_on_conflict(ledger, decision.aggregates):
            recordings = ledger.save(*decision.aggregates, command=record)
        position = max(r.notification.id for r in recordings) if recordings else None
        return cast(R, {**result, "position": position})

    with translated_store_errors():
        scope = command.scope(ledger)
        return retry_on_conflict(attempt, ledger.retry_count_max, what=command.name)


def _replayed(previous: CommandRecord, fingerprint: str) -> Mapping[str, Any]:
    if previous.fingerprint != fingerprint:
        raise IdempotencyConflict(
            f"idempotency key {previous.key!r} was already used for a different request"
        )
    return {**previous.result, "position": previous.position}


class Conflict(Exception):
    """Raised inside a ``retry_on_conflict`` attempt: someone else wrote first, try again."""


@contextmanager
def evicting_on_conflict(
    ledger: LedgerApplication, aggregates: Sequence[Aggregate]
) -> Iterator[None]:
    """Turn the library's version collision into ``Conflict``; cached copies of the aggregates
    now hold unsaved events, so they are evicted and the next attempt reads fresh ones."""
    try:
        yield
    except IntegrityError:
        ledger.evict([a.id for a in aggregates])
        raise Conflict from None


def retry_on_conflict(
    attempt: Callable[[], T],
    retry_count_max: int,
    *,
    what: str,
    backoff_base_s: float = RETRY_BACKOFF_BASE_S,
) -> T:
    """Run ``attempt`` until it does not raise ``Conflict``, with jittered exponential backoff
    (two writers that collided should not collide again at once); at most
    ``retry_count_max`` retries, then ``ConcurrencyConflict``."""
    for retry in range(retry_count_max + 1):
        try:
            return attempt()
        except Conflict:
            time.sleep(random.uniform(0, backoff_base_s * 2**retry))
    raise ConcurrencyConflict(
        f"{what} lost {retry_count_max + 1} optimistic-concurrency races; "
        "nothing was written, retry later"
    )


@contextmanager
def translated_store_errors() -> Iterator[None]:
    """The library's persistence errors end here: a version collision that escaped the retry
    loop is a conflict, anything else means the store is unavailable."""
    try:
        yield
    except IntegrityError as exc:
        raise ConcurrencyConflict("a concurrent write won; nothing was written") from exc
    except PersistenceError as exc:
        raise StoreUnavailable(str(exc)) from exc
