"""Usage keys on PostgreSQL: a usage event applied before fails the whole transaction that
applies it again (deductions, keys and position), and the consumer, planning without asking
the store, counts it as a duplicate and applies the rest of its batch once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
from eventsourcing.persistence import IntegrityError

from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.domain.wallet import Wallet
from ledger_service.ingestion.batch import UsageIngestor
from ledger_service.ingestion.records import Consumed, DeadLetter, position_name
from ledger_service.service.ledger import LedgerApplication
from ledger_service.service.usage import CLEAN_BATCHES_BEFORE_SKIPPING_LOOKUP
from ledger_service.store import UsageKey

pytestmark = pytest.mark.integration
D = Decimal
POSITION = "usage-keys-test:0"


@pytest.fixture
def consumer_ledger(fresh_database_url: str) -> Iterator[LedgerApplication]:
    settings = Settings(environment="test", database_url=fresh_database_url, db_pool_size=2)
    ledger = build_ledger(settings, fresh_database_url, for_ingestion=True)
    ledger.open_wallet(
        company_id="acme", currency="USD", included_quota="1000",
        rate_card={"marketing": "1"}, actor="op", idempotency_key="open",
    )  # fmt: skip
    ledger.link_sender(company_id="acme", waba_id="w1", actor="op", idempotency_key="link")
    yield ledger
    ledger.close()


def usage(offset: int, event_id: str) -> Consumed:
    document = {
        "specversion": "1.0", "id": event_id, "source": "//test", "type": "message.sent",
        "data": {"company_id": "acme", "waba_id": "w1", "conversation_id": "c",
                 "category": "marketing", "status": "delivered", "units": 1},
    }  # fmt: skip
    return Consumed("usage-keys-test", 0, offset, b"acme", json.dumps(document).encode())


def test_a_key_applied_before_fails_the_whole_save(consumer_ledger: LedgerApplication) -> None:
    ledger = consumer_ledger
    wallet = ledger.get_wallet("acme")
    ledger.save_consumed(
        [], usage_keys=[UsageKey("//test", "e-1", "acme")], position_name=POSITION, next_offset=1
    )
    version = wallet.version
    wallet.record_usage(
        D(1), usage_reference="//test#e-2", sender_id="w1", conversation_id="c",
        category="marketing", units=1, unit_price=D(1), actor="t",
    )  # fmt: skip
    keys = [UsageKey("//test", "e-2", "acme"), UsageKey("//test", "e-1", "acme")]
    with pytest.raises(IntegrityError):
        ledger.save_consumed([wallet], usage_keys=keys, position_name=POSITION, next_offset=3)
    ledger.evict([wallet.id])
    assert ledger.get_wallet("acme").version == version, "the deduction was not committed"
    assert ledger.consumer_position(POSITION) == 1, "nor the position"
    applied = ledger.command_store.select_applied_usage_keys([("//test", "e-1"), ("//test", "e-2")])
    assert applied == {("//test", "e-1")}, "nor the new key"


def test_a_duplicate_met_without_asking_is_counted_once(
    consumer_ledger: LedgerApplication,
) -> None:
    dead: list[DeadLetter] = []
    ingest = UsageIngestor(consumer_ledger, dead_letter=dead.append)
    for n in range(CLEAN_BATCHES_BEFORE_SKIPPING_LOOKUP + 1):  # then it stops asking
        ingest.apply_batch([usage(n, f"clean-{n}")])
    offset = CLEAN_BATCHES_BEFORE_SKIPPING_LOOKUP + 1
    outcome = ingest.apply_batch([usage(offset, "clean-3"), usage(offset + 1, "new")])
    assert (outcome.applied, outcome.duplicates, dead) == (1, 1, [])
    wallet = consumer_ledger.get_wallet("acme")
    debits = [e for e in consumer_ledger.events.get(wallet.id) if isinstance(e, Wallet.Debited)]
    assert sorted(e.reference for e in debits) == sorted(
        [f"//test#clean-{n}" for n in range(offset)] + ["//test#new"]
    )
    assert wallet.included == D(1000 - offset - 1)
    assert consumer_ledger.consumer_position(position_name("usage-keys-test", 0)) == offset + 2
