"""A wallet kept in credits over HTTP on a real PostgreSQL: opened in the unit, a top-up
requested and invoiced in rupees, the rate recorded at request time, the units credited when
paid, both shown on the request, and verify clean."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from ledger_service.audit.verify import verify
from ledger_service.domain.credits import check_credit_rates
from ledger_service.service.ledger import LedgerApplication
from tests.conftest import Tokens
from tests.integration.test_api import assert_error, key

pytestmark = pytest.mark.integration
D = Decimal


@pytest.fixture
def priced(pg_ledger: LedgerApplication) -> Iterator[LedgerApplication]:
    pg_ledger.credit_rates = check_credit_rates({"CREDIT": {"INR": "10"}})
    yield pg_ledger
    pg_ledger.credit_rates = {}


async def test_credits_are_bought_with_money_at_the_rate_of_the_request(
    api: httpx.AsyncClient, priced: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    operator, tenant = tokens.operator(), tokens.tenant(company_id)
    opened = await api.post(
        "/v1/wallets", json={"company_id": company_id, "currency": "CREDIT",
                             "rate_card": {"ai_summary": "2"}},
        headers=operator | key(),
    )  # fmt: skip
    assert opened.status_code == 201, opened.text
    unknown = await api.post(
        "/v1/wallets", json={"company_id": f"{company_id}-x", "currency": "DIAMOND"},
        headers=operator | key(),
    )  # fmt: skip
    assert_error(unknown, 422, "INVALID_ARGUMENT")

    asked = await api.post(
        "/v1/topup-requests", json={"company_id": company_id, "amount": "100", "currency": "INR"},
        headers=tenant | key(),
    )  # fmt: skip
    assert asked.status_code == 201, asked.text
    topup = asked.json()
    assert (topup["amount"], topup["currency"], topup["credits"], topup["credit_unit"]) == (
        "100", "INR", "1000", "CREDIT",
    )  # fmt: skip
    priced.credit_rates = check_credit_rates({"CREDIT": {"INR": "12"}})  # the price goes up
    path = f"/v1/topup-requests/{topup['id']}"
    assert (await api.post(f"{path}/approve", headers=operator | key())).status_code == 200
    paid = await api.post(f"{path}/mark-paid", json={"payment_reference": "upi-1"},
                          headers=operator | key())  # fmt: skip
    assert paid.status_code == 200, paid.text
    shown = (await api.get(path, params={"min_position": paid.json()["position"]},
                           headers=tenant)).json()  # fmt: skip
    assert (shown["status"], shown["total"], shown["currency"]) == ("completed", "100", "INR")
    assert (shown["credits"], shown["credit_rate"], shown["credit_unit"]) == (
        "1000",
        "10",
        "CREDIT",
    )
    wallet = (await api.get(f"/v1/wallets/{company_id}", headers=tenant)).json()
    assert (wallet["currency"], wallet["balance"]) == ("CREDIT", "1000")
    assert_error(
        await api.post("/v1/topup-requests", headers=tenant | key(),
                       json={"company_id": company_id, "amount": "5", "currency": "USD"}),
        409, "CURRENCY_MISMATCH",
    )  # fmt: skip
    report = verify(priced)
    assert report.ok, report.problems
