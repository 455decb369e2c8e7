"""Tenant transfers (gifts) over HTTP against a real PostgreSQL: who may send, the daily limit
under 10 concurrent requests, the agency's commission, the operators' list, and verify."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

import httpx
import pytest

from ledger_service.audit.verify import verify
from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.service.ledger import LedgerApplication
from tests.conftest import Tokens
from tests.integration.test_api import assert_error, key, open_company

pytestmark = pytest.mark.integration
D = Decimal


def sender(tokens: Tokens, company: str) -> dict[str, str]:
    return tokens._header(company, ["billing.view", "billing.transfer"], f"user@{company}")


async def test_tenants_send_gifts_within_their_daily_limit(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    alice, bob, agency = company_id, f"{company_id}-bob", f"{company_id}-agency"
    for company in (alice, bob, agency):
        open_company(pg_ledger, company, included_quota="0", postpaid_limit="0")
    pg_ledger.credit_wallet(
        company_id=alice, amount="100", kind="grant", reference="fund", actor="t",
        idempotency_key="fund",
    )  # fmt: skip
    pg_ledger.transfer_commission_rate = D("0.1")
    pg_ledger.transfer_agency_company_id = agency
    try:
        patch = await api.patch(
            f"/v1/wallets/{alice}", json={"transfers": {"daily_limit": "50"}},
            headers=tokens.operator() | key(),
        )  # fmt: skip
        assert patch.status_code == 200, patch.text
        path = f"/v1/wallets/{alice}/transfers"
        body = {"to_company_id": bob, "amount": "10", "gift_type": "rose", "message": "hi"}
        assert_error(await api.post(path, json=body, headers=tokens.tenant(alice) | key()),
                     403, "INSUFFICIENT_SCOPE")  # fmt: skip
        assert_error(await api.post(path, json=body, headers=sender(tokens, bob) | key()),
                     404, "WALLET_NOT_FOUND")  # fmt: skip

        answers = await asyncio.gather(
            *(api.post(path, json=body, headers=sender(tokens, alice) | key()) for _ in range(10))
        )
        codes = Counter(a.status_code for a in answers)
        assert codes == {201: 5, 409: 5}, [a.text for a in answers]
        refused = [a.json()["error"]["code"] for a in answers if a.status_code == 409]
        assert set(refused) == {"TRANSFER_LIMIT_REACHED"}
        made = next(a.json() for a in answers if a.status_code == 201)
        assert (made["commission"], made["net_amount"], made["gift_type"]) == ("1", "9", "rose")
    finally:
        pg_ledger.transfer_commission_rate = D(0)
        pg_ledger.transfer_agency_company_id = None

    balances = {c: pg_ledger.get_wallet(c).prepaid for c in (alice, bob, agency)}
    assert balances == {alice: D(50), bob: D(45), agency: D(5)}
    listed = await api.get(
        "/v1/transfers",
        params={"company": alice, "min_position": pg_ledger.recorder.max_notification_id()},
        headers=tokens.operator(),
    )
    items = listed.json()["items"]
    assert [(i["gift_type"], i["message"], i["actor"]) for i in items] == [
        ("rose", "hi", f"user@{alice}")
    ] * 5
    wallet = await api.get(f"/v1/wallets/{alice}", headers=tokens.tenant(alice))
    assert wallet.json()["policies"]["transfers"] == {"daily_limit": "50"}
    report = verify(pg_ledger)
    assert report.ok, report.problems


def test_the_commission_and_agency_come_from_settings(database_url: str) -> None:
    settings = Settings(
        environment="test", transfer_commission_rate="0.05", transfer_agency_company="agency"
    )
    ledger = build_ledger(settings, database_url)
    try:
        assert ledger.transfer_commission_rate == D("0.05")
        assert ledger.transfer_agency_company_id == "agency"
    finally:
        ledger.close()
    with pytest.raises(ValueError, match="transfer_commission_rate"):
        Settings(environment="test", transfer_commission_rate="1")
