"""Operators' queries across companies: every company's transactions with a summary by kind,
and one company's ledger totals, which add up to its balance (real PostgreSQL)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
import pytest

from ledger_service.domain.usage import Usage
from ledger_service.service.ledger import LedgerApplication
from tests.conftest import Tokens
from tests.integration.test_api import new_topup, open_company

pytestmark = pytest.mark.integration


def busy_company(ledger: LedgerApplication, company: str, peer: str) -> None:
    """Every kind of entry: quota (a grant), a paid top-up, a grant, usage, a refund-free
    adjustment both ways, and a transfer out to ``peer``."""
    open_company(ledger, company)  # included quota 5: a grant
    topup = uuid.UUID(new_topup(ledger, company, approve=True))  # 40
    ledger.mark_topup_paid(topup_id=topup, payment_reference="r", actor="op", idempotency_key="p")
    ledger.credit_wallet(
        company_id=company, amount="7", kind="grant", reference="promo", actor="op",
        idempotency_key="g",
    )  # fmt: skip
    ledger.apply_usage(
        Usage("//t", f"u-{company}", company, f"{company}-w1", "c", "marketing", "sent", 4)
    )  # 4 x 0.5 = 2
    ledger.credit_wallet(
        company_id=company, amount="3", kind="adjustment", reference="fix", actor="op",
        idempotency_key="adj",
    )  # fmt: skip
    ledger.transfer(
        from_company_id=company, to_company_id=peer, amount="10", actor="op",
        idempotency_key="gift",
    )  # fmt: skip


async def test_a_company_ledger_adds_up_to_its_balance(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    peer = f"{company_id}-peer"
    open_company(pg_ledger, peer)
    busy_company(pg_ledger, company_id, peer)
    position = pg_ledger.recorder.max_notification_id()
    response = await api.get(
        f"/v1/admin/companies/{company_id}/ledger?min_position={position}",
        headers=tokens.operator(),
    )
    assert response.status_code == 200, response.text
    usd = response.json()["currencies"]["USD"]
    assert {k: v for k, v in usd.items() if k != "entries"} == {
        "purchased": "40", "granted": "12", "refunded": "0", "transferred_in": "0",
        "transferred_out": "10", "adjusted": "3", "used": "2", "expired": "0", "balance": "43",
    }  # fmt: skip
    assert usd["entries"] == 6
    assert Decimal(usd["balance"]) == pg_ledger.get_wallet(company_id).balance
    peer_ledger = await api.get(f"/v1/admin/companies/{peer}/ledger", headers=tokens.operator())
    assert peer_ledger.json()["currencies"]["USD"]["transferred_in"] == "10"

    assert (await api.get(
        f"/v1/admin/companies/{company_id}/ledger", headers=tokens.tenant(company_id)
    )).status_code == 403  # fmt: skip
    unknown = await api.get(f"/v1/admin/companies/{company_id}-x/ledger", headers=tokens.operator())
    assert unknown.status_code == 404


async def test_admin_transactions_filter_page_and_summarise_across_companies(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    peer = f"{company_id}-peer"
    open_company(pg_ledger, peer)
    busy_company(pg_ledger, company_id, peer)
    position = pg_ledger.recorder.max_notification_id()
    operator = tokens.operator()
    both = await api.get(
        f"/v1/admin/transactions?kind=transfer&limit=500&min_position={position}",
        headers=operator,
    )
    assert both.status_code == 200, both.text
    mine = {(e["company_id"], e["direction"], e["amount"]) for e in both.json()["items"]}
    assert {(company_id, "debit", "-10"), (peer, "credit", "10")} <= mine
    assert both.json()["summary"] is None  # unbounded: no summary

    pages, cursor = [], None
    while True:
        query = f"company={company_id}&limit=4" + (f"&cursor={cursor}" if cursor else "")
        body = (await api.get(f"/v1/admin/transactions?{query}", headers=operator)).json()
        pages.append(body)
        cursor = body["next_cursor"]
        if cursor is None:
            break
    items = [e for p in pages for e in p["items"]]
    assert len(items) == 6
    assert [e["position"] for e in items] == sorted((e["position"] for e in items), reverse=True)
    summary = {(r["kind"], r["direction"]): (r["count"], r["amount"]) for r in pages[0]["summary"]}
    assert summary == {
        ("adjustment", "credit"): (1, "3"), ("grant", "credit"): (2, "12"),
        ("topup", "credit"): (1, "40"), ("transfer", "debit"): (1, "-10"),
        ("usage", "debit"): (1, "-2"),
    }  # fmt: skip
    usage = await api.get(
        f"/v1/admin/transactions?company={company_id}&sender={company_id}-w1", headers=operator
    )
    assert [e["kind"] for e in usage.json()["items"]] == ["usage"]
    later = await api.get(
        f"/v1/admin/transactions?company={company_id}&from=2099-01-01T00:00:00Z", headers=operator
    )
    assert later.json()["items"] == []
    assert later.json()["summary"] == []
    tenant = await api.get("/v1/admin/transactions", headers=tokens.tenant(company_id))
    assert tenant.status_code == 403


async def test_transfers_are_listed_newest_first_with_totals_of_the_filters(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    peer, third = f"{company_id}-peer", f"{company_id}-third"
    for company in (peer, third):
        open_company(pg_ledger, company)
    busy_company(pg_ledger, company_id, peer)  # company -> peer: 10
    pg_ledger.transfer(
        from_company_id=peer, to_company_id=third, amount="4", commission_rate="0.25",
        note="thanks", actor="op", idempotency_key="gift-2",
    )  # fmt: skip
    position = pg_ledger.recorder.max_notification_id()
    operator = tokens.operator()
    response = await api.get(
        f"/v1/transfers?company={peer}&min_position={position}", headers=operator
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(t["from_company_id"], t["to_company_id"]) for t in body["items"]] == [
        (peer, third), (company_id, peer),
    ]  # fmt: skip
    newest = body["items"][0]
    assert (newest["amount"], newest["commission"], newest["net_amount"], newest["note"]) == (
        "4", "1", "3", "thanks",
    )  # fmt: skip
    usd = body["totals"]["USD"]
    assert (usd["count"], usd["amount"], usd["commission"], usd["sent"], usd["received"]) == (
        2, "14", "1", "4", "10",
    )  # fmt: skip
    first = await api.get(f"/v1/transfers?company={peer}&limit=1", headers=operator)
    cursor = first.json()["next_cursor"]
    older = await api.get(f"/v1/transfers?company={peer}&limit=1&cursor={cursor}", headers=operator)
    assert [t["to_company_id"] for t in older.json()["items"]] == [peer]
    assert older.json()["next_cursor"] is None
    unbounded = await api.get("/v1/transfers", headers=operator)
    assert unbounded.json()["totals"] is None
    assert (await api.get("/v1/transfers", headers=tokens.tenant(peer))).status_code == 403
