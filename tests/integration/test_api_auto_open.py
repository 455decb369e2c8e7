"""Wallets on first use (LEDGER_AUTO_OPEN_WALLETS) on a real PostgreSQL: twenty concurrent first
reads open the wallet once; a first top-up request opens it too; another company's tenant opens
nothing; and with the setting off an unknown company stays 404."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from ledger_service.config import Settings
from ledger_service.domain.ids import wallet_id
from ledger_service.domain.wallet import Wallet
from ledger_service.service.ledger import LedgerApplication
from tests.conftest import Tokens
from tests.integration.test_api import assert_error, key

pytestmark = pytest.mark.integration


@pytest.fixture
def api_settings(database_url: str) -> Settings:
    return Settings(
        environment="test", database_url=database_url, db_pool_size=4, db_pool_overflow_max=30,
        read_wait_timeout_ms=3000, auto_open_wallets=True, auto_open_currency="INR",
        auto_open_postpaid_limit=Decimal(50), auto_open_rate_card={"marketing": Decimal("0.8")},
    )  # fmt: skip


async def test_twenty_concurrent_first_reads_open_the_wallet_once(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    tenant = tokens.tenant(company_id)
    answers = await asyncio.gather(
        *(api.get(f"/v1/wallets/{company_id}", headers=tenant) for _ in range(20))
    )
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
    assert {(a.json()["currency"], a.json()["balance"], a.json()["available"])
            for a in answers} == {("INR", "0", "50")}  # fmt: skip
    events = list(pg_ledger.events.get(wallet_id(company_id)))
    assert sum(isinstance(e, Wallet.Opened) for e in events) == 1
    assert_error(
        await api.get(f"/v1/wallets/{company_id}-other", headers=tenant), 404, "WALLET_NOT_FOUND"
    )
    assert list(pg_ledger.events.get(wallet_id(f"{company_id}-other"))) == []


async def test_a_first_topup_request_opens_the_wallet(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    body = {"company_id": company_id, "amount": "100", "currency": "INR"}
    answer = await api.post(
        "/v1/topup-requests", json=body, headers=tokens.tenant(company_id) | key()
    )
    assert answer.status_code == 201, answer.text
    assert pg_ledger.get_wallet(company_id).currency == "INR"
