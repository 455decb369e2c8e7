"""Loading many aggregates into the repository's cache in a few statements.

The repository loads one aggregate at a time: its newest snapshot, then the events after it,
two round trips each. A consumer that meets a thousand wallets after a (re)start paid that for
every wallet and every sender's registration, one by one, while records piled up behind it
(the first seconds' latency), and again for every wallet of a batch after a conflict evicted
them. ``preload`` reads all the missing ones of a batch in two statements (newest snapshots,
then every event after them) and builds them exactly as the repository would: the snapshot (or
the first event) and then each later event, through the same mapper and upcasters.

Only for an application that owns its cache (the consumer's: no fast-forward, no copies): an
aggregate put in the cache here is what the repository's ``get`` returns next.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent

from ledger_service.domain.ids import sender_registration_id
from ledger_service.domain.registry import SenderRegistration
from ledger_service.service.runner import translated_store_errors

if TYPE_CHECKING:
    from ledger_service.service.ledger import LedgerApplication


def preload(ledger: LedgerApplication, ids: Iterable[UUID]) -> list[UUID]:
    """Put the aggregates of ``ids`` that are not cached into the cache; the ids loaded. An
    id without events is left out: the usual path reports it as it always has."""
    cache = ledger.repository.cache
    if cache is None:
        return []
    missing = [id_ for id_ in dict.fromkeys(ids) if not _cached(cache, id_)]
    if not missing:
        return []
    with translated_store_errors():
        snapshots = _latest_snapshots(ledger, missing)
        versions = {id_: snapshots[id_].originator_version if id_ in snapshots else 0
                    for id_ in missing}  # fmt: skip
        events = ledger.command_store.select_events_after(versions)
    by_id: dict[UUID, list[StoredEvent]] = defaultdict(list)
    for stored in events:
        by_id[cast(UUID, stored.originator_id)].append(stored)
    loaded = []
    for id_ in missing:
        stored_events = by_id.get(id_, [])
        if id_ in snapshots:
            stored_events.insert(0, snapshots[id_])
        aggregate = _built(ledger, stored_events)
        if aggregate is not None:
            cache.put(id_, aggregate)
            loaded.append(id_)
    return loaded


def preload_senders(ledger: LedgerApplication, waba_ids: Iterable[str]) -> None:
    """Preload the registrations of these senders, then the wallets they are linked to."""
    cache = ledger.repository.cache
    if cache is None:
        return
    registrations = [sender_registration_id(waba) for waba in set(waba_ids)]
    preload(ledger, registrations)
    wallets = []
    for id_ in registrations:
        try:
            registration = cast(SenderRegistration, cache.get(id_))
        except KeyError:
            continue  # an unknown sender: routing reports it
        if registration.wallet_id is not None:
            wallets.append(registration.wallet_id)
    preload(ledger, wallets)


def _latest_snapshots(ledger: LedgerApplication, ids: list[UUID]) -> dict[UUID, StoredEvent]:
    if ledger.snapshots is None:
        return {}
    # PostgreSQL names the snapshot store by its table; the in-memory store has none.
    table = getattr(ledger.snapshots.recorder, "events_table_name", "")
    found = ledger.command_store.select_latest_snapshots(table, ids)
    return {cast(UUID, snapshot.originator_id): snapshot for snapshot in found}


def _built(ledger: LedgerApplication, stored_events: list[StoredEvent]) -> Aggregate | None:
    aggregate: Aggregate | None = None
    for stored in stored_events:
        event: Any = ledger.mapper.to_domain_event(stored)
        aggregate = cast(Aggregate | None, event.mutate(aggregate))
    return aggregate


def _cached(cache: Any, id_: UUID) -> bool:
    try:
        cache.get(id_)
    except KeyError:
        return False
    return True
