"""The batch ingestor with the in-memory event store: routing, dedup, conflicts."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from ledger_service.ingestion.batch import UsageIngestor
from ledger_service.ingestion.records import DEDUCTION_FAILED, Consumed, DeadLetter
from ledger_service.service.ledger import LedgerApplication
from ledger_service.service.usage import CLEAN_BATCHES_BEFORE_SKIPPING_LOOKUP
from tests.fakes import InMemoryLedger


class ConflictingLedger(InMemoryLedger):
    """Every save that would apply ``cursed_event`` loses an optimistic-concurrency race."""

    cursed_event = "msg-cursed"

    def save_consumed(
        self,
        aggregates: Sequence[Aggregate],
        *,
        usage_keys: Sequence[tuple[str, str, str]],
        position_name: str,
        next_offset: int,
    ) -> None:
        if any(key[1] == self.cursed_event for key in usage_keys):
            raise IntegrityError("simulated concurrent write")
        super().save_consumed(
            aggregates, usage_keys=usage_keys, position_name=position_name, next_offset=next_offset
        )


def open_acme(app: LedgerApplication, *, included_quota: str) -> None:
    """Company "acme": marketing at 1 per unit, sender w1 linked."""
    app.open_wallet(
        company_id="acme",
        currency="USD",
        included_quota=included_quota,
        rate_card={"marketing": "1"},
        actor="t",
        idempotency_key="o",
    )
    app.link_sender(company_id="acme", waba_id="w1", actor="t", idempotency_key="l1")


@pytest.fixture
def ledger() -> Iterator[LedgerApplication]:
    app = ConflictingLedger()
    open_acme(app, included_quota="10")
    app.open_wallet(
        company_id="legacy",
        currency="USD",
        mode="per_sender",
        pool_sender_id="lw1",
        rate_card={"marketing": "2"},
        actor="t",
        idempotency_key="o",
    )
    yield app
    app.close()


def records(*events: dict[str, Any]) -> list[Consumed]:
    out = []
    for offset, data in enumerate(events):
        body = {
            "specversion": "1.0",
            "id": data.pop("id", f"msg-{offset}"),
            "source": "//t",
            "type": "message.sent",
            "data": {
                "conversation_id": "c",
                "category": "marketing",
                "status": "delivered",
                "units": 1,
            }
            | data,
        }
        out.append(
            Consumed("usage", 0, offset, data["company_id"].encode(), json.dumps(body).encode())
        )
    return out


def ingestor(ledger: LedgerApplication, sink: list[DeadLetter]) -> UsageIngestor:
    return UsageIngestor(ledger, dead_letter=sink.append, retry_count_max=2)


def test_a_conflict_that_survives_retries_is_dead_lettered_and_the_rest_applied(
    ledger: LedgerApplication,
) -> None:
    dead: list[DeadLetter] = []
    batch = records(
        {"company_id": "acme", "waba_id": "w1"},
        {"company_id": "acme", "waba_id": "w1", "id": "msg-cursed"},
        {"company_id": "acme", "waba_id": "w1"},
    )
    outcome = ingestor(ledger, dead).apply_batch(batch)
    assert (outcome.applied, outcome.dead_lettered) == (2, 1)
    assert [d.code for d in dead] == [DEDUCTION_FAILED]
    message = dead[0].message
    assert all(
        part in message
        for part in ("company=acme", "sender=w1", "conversation=c", "event=//t#msg-cursed")
    )
    assert ledger.get_wallet("acme").included == Decimal(8)
    assert ledger.consumer_position("kafka:usage:0") == 3


def test_per_sender_pools_take_only_their_own_sender(ledger: LedgerApplication) -> None:
    dead: list[DeadLetter] = []
    outcome = ingestor(ledger, dead).apply_batch(
        records(
            {"company_id": "legacy", "waba_id": "lw1", "units": 3},
            {"company_id": "legacy", "waba_id": "w1"},
        )
    )
    assert outcome.applied == 1
    assert [d.code for d in dead] == ["SENDER_NOT_LINKED"]
    assert ledger.get_wallet("legacy", "lw1").balance == Decimal(-6)


def test_duplicates_within_a_batch_and_across_batches_apply_once(
    ledger: LedgerApplication,
) -> None:
    dead: list[DeadLetter] = []
    ingest = ingestor(ledger, dead)
    first = ingest.apply_batch(
        records(
            {"company_id": "acme", "waba_id": "w1", "id": "a"},
            {"company_id": "acme", "waba_id": "w1", "id": "a"},
        )
    )
    assert (first.applied, first.duplicates) == (1, 1)
    again = [
        Consumed("usage", 0, 2 + r.offset, r.key, r.value)
        for r in records({"company_id": "acme", "waba_id": "w1", "id": "a"})
    ]
    assert ingest.apply_batch(again).duplicates == 1
    assert ledger.get_wallet("acme").included == Decimal(9)


def test_records_below_the_recorded_position_are_skipped(ledger: LedgerApplication) -> None:
    dead: list[DeadLetter] = []
    ingest = ingestor(ledger, dead)
    batch = records({"company_id": "acme", "waba_id": "w1"})
    ingest.apply_batch(batch)
    assert ingest.apply_batch(batch).skipped == 1  # a zombie's redelivery after a rebalance
    assert ledger.get_wallet("acme").included == Decimal(9)


@pytest.fixture
def cached_ingestion(ledger: LedgerApplication) -> Iterator[LedgerApplication]:
    """A second application over the same store with the ingestion cache: it never re-reads
    cached aggregates, so writes by ``ledger`` (the API) make its cache stale."""
    app = InMemoryLedger(ledger.recorder, cached=True)  # type: ignore[arg-type]
    yield app
    app.close()


def test_stale_cache_after_api_writes_is_detected_not_believed(
    ledger: LedgerApplication,
    cached_ingestion: LedgerApplication,
) -> None:
    dead: list[DeadLetter] = []
    ingest = ingestor(cached_ingestion, dead)
    ingest.apply_batch(
        records(
            {"company_id": "acme", "waba_id": "w1", "id": "warm"},
            {"company_id": "acme", "waba_id": "w2", "id": "unknown"},
        )
    )
    assert [d.code for d in dead] == ["UNKNOWN_SENDER"]
    # The API links the sender and tops the quota up: the consumer's cached wallet is stale.
    ledger.link_sender(company_id="acme", waba_id="w2", actor="t", idempotency_key="l2")
    ledger.credit_wallet(
        company_id="acme",
        amount="5",
        kind="grant",
        bucket="included",
        reference="r",
        actor="t",
        idempotency_key="g",
    )
    later = [
        Consumed("usage", 0, 2 + r.offset, b"acme", r.value)
        for r in records(
            {"company_id": "acme", "waba_id": "w2", "id": "later"},
            {"company_id": "acme", "waba_id": "w1", "id": "after"},
        )
    ]
    assert ingest.apply_batch(later).applied == 2
    wallet = ledger.get_wallet("acme")
    assert wallet.included == Decimal(10 + 5 - 3)
    assert wallet.senders == {"w1", "w2"}


class CountingLedger(InMemoryLedger):
    """Counts the batches that asked the store which usage keys are applied."""

    def __init__(self) -> None:
        super().__init__(cached=True)
        self.lookups = 0
        recorder = self.command_store
        original = recorder.select_applied_usage_keys

        def counted(keys: Any) -> set[tuple[str, str]]:
            self.lookups += 1
            return original(keys)

        recorder.select_applied_usage_keys = counted  # type: ignore[method-assign]


@pytest.fixture
def counting() -> Iterator[CountingLedger]:
    app = CountingLedger()
    open_acme(app, included_quota="1000")
    yield app
    app.close()


def at(offset: int, **data: Any) -> Consumed:
    record = records({"company_id": "acme", "waba_id": "w1"} | data)[0]
    return Consumed("usage", 0, offset, record.key, record.value)


def clean_run(ingest: UsageIngestor, first_offset: int) -> int:
    """Enough duplicate-free batches for the consumer to stop asking; the next offset."""
    for n in range(CLEAN_BATCHES_BEFORE_SKIPPING_LOOKUP):
        ingest.apply_batch([at(first_offset + n, id=f"clean-{n}")])
    return first_offset + CLEAN_BATCHES_BEFORE_SKIPPING_LOOKUP


def test_after_clean_batches_the_lookup_is_skipped_and_a_duplicate_still_applies_once(
    counting: CountingLedger,
) -> None:
    dead: list[DeadLetter] = []
    ingest = ingestor(counting, dead)
    offset = clean_run(ingest, 0)
    asked = counting.lookups
    assert asked == CLEAN_BATCHES_BEFORE_SKIPPING_LOOKUP

    ingest.apply_batch([at(offset, id="fresh")])
    assert counting.lookups == asked  # not asked: nothing in the recent past was a duplicate

    # A republished event (new offset, same id): refused by the keys at commit, then the retry
    # asks and counts it as a duplicate; the fresh event beside it is applied once.
    outcome = ingest.apply_batch([at(offset + 1, id="clean-3"), at(offset + 2, id="new")])
    assert (outcome.applied, outcome.duplicates, dead) == (1, 1, [])
    assert counting.lookups == asked + 1
    assert counting.get_wallet("acme").included == Decimal(1000 - 22)
    # Having seen a duplicate, it asks again until another clean run.
    ingest.apply_batch([at(offset + 3, id="asked")])
    assert counting.lookups == asked + 2


def test_a_refused_duplicate_is_a_duplicate_not_a_dead_letter_when_not_asking(
    counting: CountingLedger,
) -> None:
    dead: list[DeadLetter] = []
    ingest = ingestor(counting, dead)
    offset = clean_run(ingest, 0)
    # Republished with a price the rate card does not (any longer) agree with.
    outcome = ingest.apply_batch([at(offset, id="clean-0", unit_price="7")])
    assert (outcome.duplicates, outcome.dead_lettered, dead) == (1, 0, [])
    # A new event refused the same way is a dead letter, as always.
    outcome = ingest.apply_batch([at(offset + 1, id="brand-new", unit_price="7")])
    assert [d.code for d in dead] == ["PRICE_MISMATCH"]


def test_a_failed_report_of_a_billed_event_is_refunded_when_not_asking(
    counting: CountingLedger,
) -> None:
    dead: list[DeadLetter] = []
    ingest = ingestor(counting, dead)
    offset = clean_run(ingest, 0)
    outcome = ingest.apply_batch([at(offset, id="clean-5", status="failed")])
    assert (outcome.refunded, outcome.failed_status, dead) == (1, 0, [])
    assert counting.get_wallet("acme").included == Decimal(1000 - 19)
