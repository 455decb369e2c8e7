"""Risk review over HTTP against a real PostgreSQL: a held request waits in needs_review for
an operator, a card request is invoiced only when released, and the 24-hour count is exact
under 8 concurrent requests."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from ledger_service.audit.verify import verify
from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.domain.risk import RiskRules
from ledger_service.service.ledger import LedgerApplication
from tests.conftest import Tokens
from tests.integration.test_api import assert_error, key, open_company
from tests.integration.test_api_payments import card_topup

pytestmark = pytest.mark.integration
D = Decimal


@pytest.fixture
def reviewed(pg_ledger: LedgerApplication) -> Iterator[LedgerApplication]:
    pg_ledger.risk_rules = RiskRules(amount_max={"USD": D(100)}, requests_per_day_max=3)
    yield pg_ledger
    pg_ledger.risk_rules = RiskRules()


async def test_held_requests_wait_for_an_operator(
    api: httpx.AsyncClient, reviewed: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(reviewed, company_id)
    body = {"company_id": company_id, "amount": "250", "currency": "USD"}
    held = await api.post(
        "/v1/topup-requests", json=body, headers=tokens.tenant(company_id) | key()
    )
    assert held.status_code == 201, held.text
    topup = held.json()
    assert (topup["status"], topup["review_rules"]) == ("needs_review", ["amount_above_threshold"])
    operator = tokens.operator()
    queue = await api.get(
        "/v1/topup-requests",
        params={"status": "needs_review", "company": company_id, "min_position": topup["position"]},
        headers=operator,
    )
    assert [(t["id"], t["review_rules"]) for t in queue.json()["items"]] == [
        (topup["id"], ["amount_above_threshold"])
    ]
    path = f"/v1/topup-requests/{topup['id']}"
    assert_error(await api.post(f"{path}/approve", headers=operator | key()), 409,
                 "INVALID_TRANSITION")  # fmt: skip
    released = await api.post(f"{path}/release", json={"note": "called them"},
                              headers=operator | key())  # fmt: skip
    assert released.status_code == 200, released.text
    assert (released.json()["status"], released.json()["company_id"]) == ("pending", company_id)
    approved = await api.post(f"{path}/approve", headers=operator | key())
    assert approved.json()["status"] == "invoiced"

    card = await card_topup(api, tokens, company_id, amount="500")
    assert (card["status"], card["payment_order"]) == ("needs_review", None)
    card_path = f"/v1/topup-requests/{card['id']}"
    released = await api.post(f"{card_path}/release", json={}, headers=operator | key())
    assert released.json()["status"] == "invoiced", released.text
    assert released.json()["payment_order"]["checkout_url"]
    row = await api.get(card_path, params={"min_position": released.json()["position"]},
                        headers=tokens.tenant(company_id))  # fmt: skip
    assert (row.json()["status"], row.json()["review_rules"]) == (
        "invoiced", ["amount_above_threshold"]
    )  # fmt: skip
    report = verify(reviewed)
    assert report.ok, report.problems


async def test_the_daily_count_is_exact_under_concurrent_requests(
    api: httpx.AsyncClient, reviewed: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(reviewed, company_id)
    body = {"company_id": company_id, "amount": "10", "currency": "USD"}
    answers = await asyncio.gather(*(
        api.post("/v1/topup-requests", json=body, headers=tokens.tenant(company_id) | key())
        for _ in range(8)
    ))  # fmt: skip
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert Counter(a.json()["status"] for a in answers) == {"pending": 3, "needs_review": 5}


def test_the_rules_come_from_settings(database_url: str) -> None:
    settings = Settings(
        environment="test", risk_topup_amount_max={"USD": "5000"}, risk_topups_per_day_max=5,
        risk_company_age_min_days=14,
    )  # fmt: skip
    ledger = build_ledger(settings, database_url)
    try:
        assert ledger.risk_rules == RiskRules({"USD": D(5000)}, 5, 14)
    finally:
        ledger.close()
