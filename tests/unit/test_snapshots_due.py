"""A wallet is snapshotted when a save takes it across a multiple of its interval: once per
save, whether the save holds one event or a whole batch (the consumer saves hundreds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger_service.domain.usage import Usage, record_usage_on
from ledger_service.domain.wallet import Wallet
from tests.fakes import InMemoryLedger


@pytest.fixture
def app() -> Iterator[InMemoryLedger]:
    ledger = InMemoryLedger()
    ledger.open_wallet(
        company_id="acme", currency="USD", included_quota="0", postpaid_limit="1000000",
        rate_card={"marketing": "1"}, actor="t", idempotency_key="o",
    )  # fmt: skip
    ledger.link_sender(company_id="acme", waba_id="acme-w1", actor="t", idempotency_key="l")
    yield ledger
    ledger.close()


def billed(app: InMemoryLedger, first: int, count: int) -> Wallet:
    """``count`` usage debits recorded in memory and saved together."""
    wallet = app.get_wallet("acme")
    for n in range(first, first + count):
        usage = Usage("src", f"m{n}", "acme", "acme-w1", f"c{n}", "marketing", "delivered", 1)
        record_usage_on(wallet, usage, trust_producer_price=False)
    app.save(wallet)
    return wallet


def snapshot_versions(app: InMemoryLedger, wallet: Wallet) -> list[int]:
    assert app.snapshots is not None
    return [s.originator_version for s in app.snapshots.get(wallet.id)]


def test_a_batch_across_a_multiple_takes_one_snapshot_of_the_saved_state(
    app: InMemoryLedger,
) -> None:
    wallet = billed(app, 0, 150)
    assert wallet.version < 200
    assert snapshot_versions(app, wallet) == []
    wallet = billed(app, 150, 250)  # across 200 and 400: one snapshot, of the end
    assert 400 < wallet.version < 600
    assert snapshot_versions(app, wallet) == [wallet.version]
    taken = wallet.version
    wallet = billed(app, 400, 10)
    assert snapshot_versions(app, wallet) == [taken]


def test_a_batch_ending_on_a_multiple_takes_it(app: InMemoryLedger) -> None:
    wallet = billed(app, 0, 1)  # one event per usage from here on (the alerts are raised)
    wallet = billed(app, 1, 199 - wallet.version)
    assert snapshot_versions(app, wallet) == []
    wallet = billed(app, 300, 1)  # a save of one event, version 200
    assert wallet.version == 200
    assert snapshot_versions(app, wallet) == [200]
    wallet = billed(app, 500, 1)
    assert snapshot_versions(app, wallet) == [200]
