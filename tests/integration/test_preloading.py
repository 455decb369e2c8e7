"""Preloading: many aggregates read in a few statements build exactly what the repository
builds one by one, from a snapshot plus later events or from events alone."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.domain.ids import sender_registration_id, wallet_id
from ledger_service.domain.wallet import Wallet
from ledger_service.service.ledger import LedgerApplication
from ledger_service.service.preloading import preload, preload_senders

pytestmark = pytest.mark.integration
D = Decimal


@pytest.fixture
def consumer_ledger(fresh_database_url: str) -> Iterator[LedgerApplication]:
    """An application configured as the consumer's: its own cache, no fast-forward."""
    settings = Settings(environment="test", database_url=fresh_database_url, db_pool_size=2)
    ledger = build_ledger(settings, fresh_database_url, for_ingestion=True)
    yield ledger
    ledger.close()


def funded_wallet(ledger: LedgerApplication, company: str, usage_count: int) -> None:
    ledger.open_wallet(
        company_id=company,
        currency="USD",
        postpaid_limit="10000",
        included_quota="5",
        rate_card={"marketing": "1"},
        actor="op",
        idempotency_key="open",
    )
    for waba in (f"{company}-a", f"{company}-b"):
        ledger.link_sender(company_id=company, waba_id=waba, actor="op", idempotency_key=waba)
    wallet = ledger.get_wallet(company)
    for n in range(usage_count):
        wallet.record_usage(
            D("0.25"),
            usage_reference=f"r{n}",
            sender_id=f"{company}-a",
            conversation_id="c",
            category="marketing",
            units=1,
            unit_price=D("0.25"),
            actor="test",
        )
    ledger.save(wallet)


def state(aggregate: Any) -> dict[str, Any]:
    return dict(vars(aggregate))


def test_preloaded_aggregates_equal_the_repositorys(
    fresh_ledger: LedgerApplication, consumer_ledger: LedgerApplication
) -> None:
    interval = LedgerApplication.snapshotting_intervals[Wallet]
    # One wallet past a snapshot (snapshot + later events), one with events only.
    funded_wallet(fresh_ledger, "pre-snap", interval + 7)
    funded_wallet(fresh_ledger, "pre-plain", 3)
    assert fresh_ledger.snapshots is not None
    assert list(fresh_ledger.snapshots.get(wallet_id("pre-snap")))
    assert not list(fresh_ledger.snapshots.get(wallet_id("pre-plain")))

    preload_senders(consumer_ledger, ["pre-snap-a", "pre-snap-b", "pre-plain-b", "nobody"])

    cache = consumer_ledger.repository.cache
    assert cache is not None
    for company in ("pre-snap", "pre-plain"):
        preloaded = cache.get(wallet_id(company))
        expected = fresh_ledger.repository.get(wallet_id(company))
        assert state(preloaded) == state(expected)
        assert preloaded.balance == expected.balance
        registration = sender_registration_id(f"{company}-b")
        assert state(cache.get(registration)) == state(fresh_ledger.repository.get(registration))
    with pytest.raises(KeyError):  # an unknown sender is left to routing, which reports it
        cache.get(sender_registration_id("nobody"))
    # What the consumer's repository returns next is the preloaded object itself.
    assert consumer_ledger.get_wallet("pre-snap") is cache.get(wallet_id("pre-snap"))


def test_preload_skips_what_is_cached_and_what_does_not_exist(
    fresh_ledger: LedgerApplication, consumer_ledger: LedgerApplication
) -> None:
    funded_wallet(fresh_ledger, "pre-cached", 2)
    cached = consumer_ledger.get_wallet("pre-cached")
    missing = wallet_id("pre-missing")

    assert preload(consumer_ledger, [wallet_id("pre-cached"), missing]) == []
    assert consumer_ledger.get_wallet("pre-cached") is cached  # not replaced
