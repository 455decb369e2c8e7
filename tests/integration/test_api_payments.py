"""Card top-ups over HTTP on a real PostgreSQL: the mock checkout paid end to end, a signed
webhook delivered twice and by ten concurrent requests credits once, refused webhooks write
nothing, and a payment that is not the order credits nothing."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import stripe
from prometheus_client import REGISTRY

from ledger_service.config import DEVELOPMENT_MOCK_WEBHOOK_SECRET
from ledger_service.domain.wallet import Wallet
from ledger_service.service.ledger import LedgerApplication
from tests.conftest import Tokens
from tests.integration.test_api import assert_error, key, open_company

pytestmark = pytest.mark.integration
D = Decimal
WEBHOOK = "/v1/payments/webhooks/mock"


async def card_topup(
    api: httpx.AsyncClient, tokens: Tokens, company_id: str, amount: str = "40"
) -> dict[str, Any]:
    body = {"company_id": company_id, "amount": amount, "currency": "USD",
            "payment_method": "card"}  # fmt: skip
    response = await api.post(
        "/v1/topup-requests", json=body, headers=tokens.tenant(company_id) | key()
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def signed(event: dict[str, Any], *, secret: str = DEVELOPMENT_MOCK_WEBHOOK_SECRET,
           at: int | None = None) -> tuple[bytes, dict[str, str]]:  # fmt: skip
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=at)
    return payload.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


def completed(order_id: str, amount_minor: int = 4000) -> dict[str, Any]:
    session = {"id": "cs_test", "client_reference_id": order_id, "amount_total": amount_minor,
               "currency": "usd", "payment_status": "paid"}  # fmt: skip
    return {"id": f"evt_{uuid4().hex}", "type": "checkout.session.completed",
            "data": {"object": session}}  # fmt: skip


def refused() -> float:
    labels = {"provider": "mock", "outcome": "refused"}
    return REGISTRY.get_sample_value("ledger_payment_webhooks_total", labels) or 0.0


def credits(ledger: LedgerApplication, company_id: str) -> list[Wallet.Credited]:
    """The wallet's top-up credits, from the event store."""
    wallet = ledger.get_wallet(company_id)
    events = ledger.events.get(wallet.id)
    return [e for e in events if isinstance(e, Wallet.Credited) and e.kind == "topup"]


async def test_a_tenant_pays_a_card_topup_on_the_mock_checkout(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)
    topup = await card_topup(api, tokens, company_id)
    order = topup["payment_order"]
    assert (topup["status"], order["status"], order["amount_total"]) == (
        "invoiced", "created", "40"
    )  # fmt: skip
    checkout = order["checkout_url"].removeprefix("http://127.0.0.1:8000")
    page = await api.get(checkout)
    assert page.status_code == 200
    assert "40 USD" in page.text
    paid = await api.post(f"{checkout}/pay")
    assert paid.status_code == 200
    assert "<strong id=status>succeeded</strong>" in paid.text
    head = pg_ledger.recorder.max_notification_id()
    read = await api.get(
        f"/v1/payment-orders/{order['id']}?min_position={head}", headers=tokens.tenant(company_id)
    )
    assert read.json() | {"position": None} == order | {"status": "succeeded"}
    other = tokens.tenant(f"{company_id}-other")
    assert_error(
        await api.get(f"/v1/payment-orders/{order['id']}", headers=other),
        404, "PAYMENT_ORDER_NOT_FOUND",
    )  # fmt: skip
    pg_ledger.evict([UUID(topup["id"])])
    assert pg_ledger.get_topup(UUID(topup["id"])).status == "completed"
    assert [c.amount for c in credits(pg_ledger, company_id)] == [D(40)]


async def test_a_webhook_delivered_twice_and_by_ten_concurrent_requests_credits_once(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)
    order = (await card_topup(api, tokens, company_id))["payment_order"]
    payload, headers = signed(completed(order["id"]))
    answers = await asyncio.gather(
        *(api.post(WEBHOOK, content=payload, headers=headers) for _ in range(10))
    )
    answers.append(await api.post(WEBHOOK, content=payload, headers=headers))
    assert {a.status_code for a in answers} == {200}
    assert {(a.json()["outcome"], a.json()["status"]) for a in answers} == {
        ("applied", "succeeded")
    }
    assert [c.amount for c in credits(pg_ledger, company_id)] == [D(40)]


async def test_refused_webhooks_write_nothing(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)
    order = (await card_topup(api, tokens, company_id))["payment_order"]
    event = completed(order["id"])
    payload, headers = signed(event)
    head = pg_ledger.recorder.max_notification_id()
    refused_before = refused()
    refusals = [
        (signed(event, secret="whsec_someone_else"), 401, "WEBHOOK_SIGNATURE_INVALID"),
        ((payload.replace(b"4000", b"9000"), headers), 401, "WEBHOOK_SIGNATURE_INVALID"),
        ((payload, {}), 401, "WEBHOOK_SIGNATURE_INVALID"),
        (signed(event, at=int(time.time()) - 600), 401, "WEBHOOK_TIMESTAMP_TOO_OLD"),
        (signed(completed(str(uuid4()))), 404, "PAYMENT_ORDER_NOT_FOUND"),
        (signed({"id": "evt_x"}), 400, "WEBHOOK_MALFORMED"),
    ]
    for (body, sent), status, code in refusals:
        assert_error(await api.post(WEBHOOK, content=body, headers=sent), status, code)
    assert_error(
        await api.post("/v1/payments/webhooks/stripe", content=payload, headers=headers),
        404, "WEBHOOK_NOT_CONFIGURED",
    )  # fmt: skip
    assert pg_ledger.recorder.max_notification_id() == head
    assert credits(pg_ledger, company_id) == []
    assert refused() - refused_before == len(refusals)


async def test_a_payment_that_is_not_the_order_needs_review_and_credits_nothing(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)
    order = (await card_topup(api, tokens, company_id))["payment_order"]
    payload, headers = signed(completed(order["id"], amount_minor=100))
    answer = await api.post(WEBHOOK, content=payload, headers=headers)
    assert (answer.status_code, answer.json()["status"]) == (200, "needs_review")
    assert credits(pg_ledger, company_id) == []
    # The tenant can start another order only once an operator settled this one: the
    # flagged order is final, the top-up still invoiced.
    again = await api.post(
        f"/v1/topup-requests/{order['topup_id']}/payment-orders",
        headers=tokens.tenant(company_id) | key(),
    )
    assert again.status_code == 201
    assert again.json()["id"] != order["id"]
    listed = await api.get(
        f"/v1/topup-requests/{order['topup_id']}/payment-orders?min_position="
        f"{again.json()['position']}",
        headers=tokens.tenant(company_id),
    )
    assert [(o["id"], o["status"], o["failure_reason"]) for o in listed.json()] == [
        (order["id"], "needs_review", "paid 1 USD, ordered 40 USD"),
        (again.json()["id"], "created", None),
    ]
    assert_error(
        await api.get(f"/v1/topup-requests/{order['topup_id']}/payment-orders",
                      headers=tokens.tenant(f"{company_id}-x")),
        404, "TOPUP_NOT_FOUND",
    )  # fmt: skip


async def test_a_taxed_card_topup_shows_its_invoice_lines_and_books_each_part(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)
    pg_ledger.topup_tax_percent, pg_ledger.topup_fee_percent = D(18), D("2.4")
    topup = await card_topup(api, tokens, company_id, amount="100")
    order = topup["payment_order"]
    assert order["amount_total"] == "120.4"
    payload, headers = signed(completed(order["id"], amount_minor=12040))
    assert (await api.post(WEBHOOK, content=payload, headers=headers)).json()["status"] == (
        "succeeded"
    )
    read = await api.get(
        f"/v1/topup-requests/{topup['id']}?min_position={topup['position']}",
        headers=tokens.tenant(company_id),
    )
    lines = {k: read.json()[k] for k in ("amount", "tax", "fee", "total")}
    assert lines == {"amount": "100", "tax": "18", "fee": "2.4", "total": "120.4"}
    assert [c.amount for c in credits(pg_ledger, company_id)] == [D(100)]


async def test_a_tenant_buys_a_listed_pack_by_card_and_gets_its_bonus(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)
    name = f"p{uuid4().hex[:8]}"  # the catalog is shared by the tests' database
    pack = {"name": name, "currency": "USD", "amount": "40", "bonus": "6"}
    tenant = tokens.tenant(company_id)
    assert_error(await api.post("/v1/packs", json=pack, headers=tenant | key()), 403,
                 "INSUFFICIENT_SCOPE")  # fmt: skip
    defined = await api.post("/v1/packs", json=pack, headers=tokens.operator() | key())
    assert defined.status_code == 201, defined.text
    listed = (await api.get("/v1/packs?currency=USD", headers=tenant)).json()
    assert {k: v for k, v in listed[[p["name"] for p in listed].index(name)].items()
            if k != "position"} == pack  # fmt: skip
    body = {"company_id": company_id, "amount": "40", "currency": "USD", "pack": name,
            "payment_method": "card"}  # fmt: skip
    topup = (await api.post("/v1/topup-requests", json=body, headers=tenant | key())).json()
    checkout = topup["payment_order"]["checkout_url"].removeprefix("http://127.0.0.1:8000")
    assert (await api.post(f"{checkout}/pay")).status_code == 200
    pg_ledger.evict([pg_ledger.get_wallet(company_id).id])
    wallet = pg_ledger.get_wallet(company_id)
    assert (wallet.prepaid, wallet.granted) == (D(40), D(6))
    row = (await api.get(f"/v1/topup-requests/{topup['id']}", headers=tenant)).json()
    assert (row["pack"], row["bonus"]) == (name, "6")
    retired = await api.delete(f"/v1/packs/USD/{name}", headers=tokens.operator() | key())
    assert retired.status_code == 200
    listed = (await api.get("/v1/packs?currency=USD", headers=tenant)).json()
    assert name not in [p["name"] for p in listed]


async def test_an_operator_sets_a_wallets_tax_rate_for_its_invoices(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)
    patched = await api.patch(
        f"/v1/wallets/{company_id}", json={"tax_percent": "18"}, headers=tokens.operator() | key()
    )
    assert patched.status_code == 200, patched.text
    topup = await card_topup(api, tokens, company_id, amount="50")
    assert topup["payment_order"]["amount_total"] == "59"


async def test_an_expired_checkout_then_a_new_order_paid_credits_once(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)
    first = (await card_topup(api, tokens, company_id))["payment_order"]
    expired = {"id": f"evt_{uuid4().hex}", "type": "checkout.session.expired",
               "data": {"object": {"client_reference_id": first["id"]}}}  # fmt: skip
    answer = await api.post(WEBHOOK, content=signed(expired)[0], headers=signed(expired)[1])
    assert answer.json()["status"] == "expired"
    second = await api.post(
        f"/v1/topup-requests/{first['topup_id']}/payment-orders",
        headers=tokens.tenant(company_id) | key(),
    )
    payload, headers = signed(completed(second.json()["id"]))
    assert (await api.post(WEBHOOK, content=payload, headers=headers)).json()["status"] == (
        "succeeded"
    )
    late, late_headers = signed(completed(first["id"]))  # the expired one cannot pay now
    assert (await api.post(WEBHOOK, content=late, headers=late_headers)).json()["outcome"] == (
        "ignored"
    )
    assert [c.amount for c in credits(pg_ledger, company_id)] == [D(40)]
