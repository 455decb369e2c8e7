"""The hold batcher against a real PostgreSQL: wallets it keeps between groups are brought up to
date in one query (``select_events_after``), and two batchers (two API processes' worth) sharing a
pool with room for exactly ten grant exactly ten."""

from __future__ import annotations

import itertools
from concurrent.futures import Future
from decimal import Decimal

import pytest

from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.domain.errors import InsufficientAvailableBalance
from ledger_service.domain.ids import wallet_id
from ledger_service.domain.usage import Usage
from ledger_service.service.hold_batcher import HoldBatcher
from ledger_service.service.holds import HoldState, PlaceHold
from ledger_service.service.ledger import LedgerApplication
from tests.integration.test_api import open_company

pytestmark = pytest.mark.integration
D = Decimal


def hold(company_id: str, reference: str, units: int = 1) -> PlaceHold:
    return PlaceHold(
        company_id=company_id, waba_id=f"{company_id}-w1", category="marketing", units=units,
        reference=reference, actor="sender", idempotency_key=reference,
    )  # fmt: skip


def test_fast_forward_applies_what_others_saved_to_several_wallets_in_one_query(
    pg_ledger: LedgerApplication, api_settings: Settings, database_url: str, company_id: str
) -> None:
    companies = [f"{company_id}-a", f"{company_id}-b", f"{company_id}-c"]
    for company in companies:
        open_company(pg_ledger, company)
    kept = [pg_ledger.get_wallet(company) for company in companies]
    other = build_ledger(api_settings, database_url)
    try:
        for n, company in enumerate(companies[:2], 1):  # the third one is left as it was
            for i in range(n):
                usage = Usage("svc", f"{company}-{i}", company, f"{company}-w1", "c",
                              "marketing", "delivered", 4)  # fmt: skip
                other.apply_usage(usage)
    finally:
        other.close()
    before = [wallet.version for wallet in kept]
    pg_ledger.fast_forward(kept)
    pg_ledger.evict(wallet.id for wallet in kept)
    fresh = [pg_ledger.get_wallet(company) for company in companies]
    assert [w.version > v for w, v in zip(kept, before, strict=True)] == [True, True, False]
    assert [(w.version, w.balance, w.included, w.entry_hash) for w in kept] == [
        (w.version, w.balance, w.included, w.entry_hash) for w in fresh
    ]


def test_two_batchers_sharing_a_pool_never_overspend_it(
    pg_ledger: LedgerApplication, api_settings: Settings, database_url: str, company_id: str
) -> None:
    """Both batchers keep the wallet between groups; each group catches up on what the other
    saved, so the refusals are right (exactly ten granted) and nothing is over-reserved."""
    open_company(pg_ledger, company_id, included_quota="0", postpaid_limit="5")  # 10 x 0.5
    other = build_ledger(api_settings, database_url)
    batchers = [HoldBatcher(pg_ledger, window_s=0.002), HoldBatcher(other, window_s=0.002)]
    for batcher in batchers:
        batcher.start()
    futures: list[Future[HoldState]] = []
    try:
        for i, batcher in zip(range(50), itertools.cycle(batchers)):
            futures.append(batcher.submit(hold(company_id, f"m{i}")))
            if i % 5 == 4:  # waves: later groups decide on wallets the batcher kept
                futures[-1].exception(timeout=10)
        outcomes = [f.exception(timeout=10) or f.result() for f in futures]
    finally:
        for batcher in batchers:
            batcher.close()
        other.close()
    granted = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, InsufficientAvailableBalance)]
    assert (len(granted), len(refused)) == (10, 40), outcomes
    pg_ledger.evict([wallet_id(company_id)])
    wallet = pg_ledger.get_wallet(company_id)
    assert (wallet.held, wallet.available) == (D(5), D(0))
