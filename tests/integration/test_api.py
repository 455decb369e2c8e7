"""The HTTP API against a real PostgreSQL, with the projection following the event store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
import structlog

from ledger_service.domain.usage import Usage
from ledger_service.service.ledger import LedgerApplication
from projections.projector import Projector
from tests.conftest import Tokens

pytestmark = pytest.mark.integration
D = Decimal


def open_company(ledger: LedgerApplication, company: str, **kwargs: Any) -> None:
    params: dict[str, Any] = {
        "currency": "USD",
        "postpaid_limit": "100",
        "included_quota": "5",
        "rate_card": {"marketing": "0.5", "utility": "0.25"},
    } | kwargs
    ledger.open_wallet(company_id=company, actor="op", idempotency_key="open", **params)
    ledger.link_sender(company_id=company, waba_id=f"{company}-w1", actor="op", idempotency_key="l")


def new_topup(ledger: LedgerApplication, company: str, *, approve: bool = False) -> str:
    topup = ledger.request_topup(
        company_id=company, amount="40", currency="USD", actor="t", idempotency_key=uuid.uuid4().hex
    )["topup_id"]
    if approve:
        ledger.approve_topup(topup_id=uuid.UUID(topup), actor="op", idempotency_key="approve")
    return str(topup)


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["request_id"] == response.headers["x-request-id"]
    assert error["message"]


# -- authorization matrix -------------------------------------------------------------------


@dataclass
class Endpoint:
    method: str
    path: str
    tenant: bool
    """A tenant endpoint (billing.view, own company) rather than an operator one."""
    ok: int
    body: Callable[[str], dict[str, Any]] | None = None
    topup: str | None = None
    """Needs a top-up in this state first: "pending" or "invoiced"."""
    own_tenant_refused: str | None = None
    """A tenant endpoint that refuses the company's own tenant in this state (403, this code)."""
    billed: bool = False
    """Needs the usage event (//matrix, m-<company>) billed first."""


ENDPOINTS = [
    Endpoint("GET", "/v1/wallets/{co}", True, 200),
    Endpoint("GET", "/v1/wallets/{co}/transactions", True, 200),
    Endpoint("GET", "/v1/wallets/{co}/usage?group_by=category", True, 200),
    Endpoint(
        "GET", "/v1/wallets/{co}/authorization?waba_id={co}-w1&category=marketing&units=2",
        True, 200,
    ),
    Endpoint("GET", "/v1/wallets/{co}/alerts", True, 200),
    Endpoint(
        "POST", "/v1/topup-requests", True, 201,
        lambda co: {"company_id": co, "amount": "10", "currency": "USD", "note": "hi"},
    ),
    Endpoint("GET", "/v1/topup-requests?company={co}", True, 200),
    Endpoint("GET", "/v1/topup-requests/{topup}", True, 200, topup="pending"),
    Endpoint(
        "POST", "/v1/wallets", False, 201,
        lambda co: {"company_id": f"{co}-new", "currency": "USD", "postpaid_limit": "5"},
    ),
    Endpoint("PATCH", "/v1/wallets/{co}", False, 200, lambda co: {"postpaid_limit": "20"}),
    Endpoint(
        "PATCH", "/v1/wallets/{co}", False, 200,
        lambda co: {"alerts": {"low_balance_threshold": "30"}, "cycle": {"anchor_day": 5}},
    ),
    Endpoint("POST", "/v1/wallets/{co}/senders", False, 201, lambda co: {"waba_id": f"{co}-w2"}),
    Endpoint("DELETE", "/v1/wallets/{co}/senders/{co}-w1", False, 200),
    Endpoint("POST", "/v1/topup-requests/{topup}/approve", False, 200, topup="pending"),
    Endpoint(
        "POST", "/v1/topup-requests/{topup}/reject", False, 200,
        lambda co: {"reason": "not now"}, topup="pending",
    ),
    Endpoint(
        "POST", "/v1/topup-requests/{topup}/cancel", True, 200,
        lambda co: {"reason": "changed my mind"}, topup="pending",
    ),
    Endpoint(
        "POST", "/v1/topup-requests/{topup}/cancel", True, 200, topup="invoiced",
        own_tenant_refused="NOT_PERMITTED",
    ),
    Endpoint(
        "POST", "/v1/topup-requests/{topup}/mark-paid", False, 200,
        lambda co: {"payment_reference": "bank-9"}, topup="invoiced",
    ),
    Endpoint(
        "POST", "/v1/wallets/{co}/adjustments", False, 201,
        lambda co: {"direction": "credit", "amount": "3", "bucket": "prepaid", "reason": "fix"},
    ),
    Endpoint(
        "POST", "/v1/wallets/{co}/refunds", False, 201,
        lambda co: {"usage": {"source": "//matrix", "id": f"m-{co}"}, "reason": "undelivered"},
        billed=True,
    ),
    Endpoint(
        "POST", "/v1/transfers", False, 201,
        lambda co: {"from_company_id": co, "to_company_id": f"{co}-peer", "amount": "1"},
    ),
    Endpoint("GET", "/v1/admin/stats", False, 200),
]  # fmt: skip
ROLES = ["anonymous", "tenant_of_company", "tenant_of_other", "operator"]


def expected_status(endpoint: Endpoint, role: str) -> tuple[int, str | None]:
    if role == "anonymous":
        return 401, "UNAUTHENTICATED"
    if role == "operator":
        return endpoint.ok, None
    if not endpoint.tenant:
        return 403, "INSUFFICIENT_SCOPE"
    if role == "tenant_of_company":
        if endpoint.own_tenant_refused:
            return 403, endpoint.own_tenant_refused
        return endpoint.ok, None
    # Another tenant's resource looks exactly like a missing one; its own list is just empty.
    if endpoint.path == "/v1/topup-requests?company={co}":
        return 404, "WALLET_NOT_FOUND"
    return 404, "TOPUP_NOT_FOUND" if "{topup}" in endpoint.path else "WALLET_NOT_FOUND"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
async def test_authorization_matrix(
    api: httpx.AsyncClient,
    pg_ledger: LedgerApplication,
    tokens: Tokens,
    company_id: str,
    endpoint: Endpoint,
    role: str,
) -> None:
    open_company(pg_ledger, company_id)
    open_company(pg_ledger, f"{company_id}-peer")
    pg_ledger.credit_wallet(
        company_id=company_id, amount="50", kind="grant", reference="seed", actor="op",
        idempotency_key="seed",
    )  # fmt: skip
    topup = (
        new_topup(pg_ledger, company_id, approve=endpoint.topup == "invoiced")
        if endpoint.topup
        else ""
    )
    if endpoint.billed:
        pg_ledger.apply_usage(
            Usage("//matrix", f"m-{company_id}", company_id, f"{company_id}-w1", "c", "marketing",
                  "sent", 2)
        )  # fmt: skip
    headers = {
        "anonymous": {},
        "tenant_of_company": tokens.tenant(company_id),
        "tenant_of_other": tokens.tenant(f"{company_id}-peer"),
        "operator": tokens.operator(),
    }[role]
    position = pg_ledger.recorder.max_notification_id()
    path = endpoint.path.format(co=company_id, topup=topup)
    if endpoint.method == "GET":
        path += ("&" if "?" in path else "?") + f"min_position={position}"
    response = await api.request(
        endpoint.method,
        path,
        headers=headers | key(),
        json=endpoint.body(company_id) if endpoint.body else None,
    )
    status, code = expected_status(endpoint, role)
    if code is None:
        assert response.status_code == status, response.text
    else:
        assert_error(response, status, code)


async def test_a_tenant_token_never_lists_another_companys_topups(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)
    other = f"{company_id}-other"
    open_company(pg_ledger, other)
    mine, theirs = new_topup(pg_ledger, company_id), new_topup(pg_ledger, other)
    position = pg_ledger.recorder.max_notification_id()
    listed = await api.get(
        f"/v1/topup-requests?min_position={position}", headers=tokens.tenant(company_id)
    )
    ids = {t["id"] for t in listed.json()["items"]}
    assert mine in ids
    assert theirs not in ids
    assert {t["company_id"] for t in listed.json()["items"]} == {company_id}
    everything = await api.get("/v1/topup-requests?limit=500", headers=tokens.operator())
    assert {mine, theirs} <= {t["id"] for t in everything.json()["items"]}


async def test_bad_tokens_are_401(api: httpx.AsyncClient, tokens: Tokens, company_id: str) -> None:
    wrong_secret = Tokens("another-secret-entirely-0123456789").tenant(company_id)
    for headers in (
        wrong_secret,
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not-a-jwt"},
    ):
        response = await api.get(f"/v1/wallets/{company_id}", headers=headers)
        assert_error(response, 401, "UNAUTHENTICATED")
    no_scope = tokens._header(company_id, ["something.else"], "x")
    assert_error(
        await api.get(f"/v1/wallets/{company_id}", headers=no_scope), 403, "INSUFFICIENT_SCOPE"
    )


# -- bad input ------------------------------------------------------------------------------


BAD_TOPUPS = [
    ({"amount": "-5"}, "INVALID_AMOUNT"),
    ({"amount": "NaN"}, "INVALID_AMOUNT"),
    ({"amount": "Infinity"}, "INVALID_AMOUNT"),
    ({"amount": "1.12345678"}, "INVALID_AMOUNT"),
    ({"amount": "10000000000000"}, "INVALID_AMOUNT"),
    ({"amount": "1e3"}, "INVALID_AMOUNT"),
    ({"amount": 12.5}, "INVALID_AMOUNT"),
    ({"amount": 12}, "INVALID_AMOUNT"),
    ({"amount": True}, "INVALID_AMOUNT"),
    ({"amount": "0"}, "INVALID_AMOUNT"),
    ({"amount": None}, "INVALID_AMOUNT"),
    ({"currency": "usd"}, "VALIDATION_ERROR"),
    ({"currency": "EUR"}, "CURRENCY_MISMATCH"),
    ({"surprise": 1}, "VALIDATION_ERROR"),
    ({"note": "x" * 501}, "VALIDATION_ERROR"),
]


@pytest.mark.parametrize(("change", "code"), BAD_TOPUPS, ids=[str(c) for c, _ in BAD_TOPUPS])
async def test_bad_topup_requests_are_4xx_with_a_code_and_write_nothing(
    api: httpx.AsyncClient,
    pg_ledger: LedgerApplication,
    tokens: Tokens,
    company_id: str,
    change: dict[str, Any],
    code: str,
) -> None:
    open_company(pg_ledger, company_id)
    before = pg_ledger.recorder.max_notification_id()
    body = {"company_id": company_id, "amount": "10", "currency": "USD"} | change
    response = await api.post(
        "/v1/topup-requests", json=body, headers=tokens.tenant(company_id) | key()
    )
    assert_error(response, 409 if code == "CURRENCY_MISMATCH" else 422, code)
    if code == "INVALID_AMOUNT" and not isinstance(change["amount"], str | None):
        assert "decimal string" in response.json()["error"]["message"]
    assert pg_ledger.recorder.max_notification_id() == before


def malformed_cases(co: str) -> list[tuple[str, str, Any, bool, int, str]]:
    """(method, path, JSON body or raw bytes, send an Idempotency-Key, status, code)."""
    topup = uuid.uuid4()
    one_usd = {"amount": "1", "currency": "USD"}
    return [
        ("POST", "/v1/topup-requests", b"{nope", True, 400, "MALFORMED_JSON"),
        ("POST", "/v1/topup-requests", {"company_id": co} | one_usd, False,
         400, "IDEMPOTENCY_KEY_REQUIRED"),
        ("POST", "/v1/topup-requests", {"company_id": f"nobody-{co}"} | one_usd, True,
         404, "WALLET_NOT_FOUND"),
        ("GET", f"/v1/wallets/nobody-{co}", None, False, 404, "WALLET_NOT_FOUND"),
        ("GET", "/v1/wallets/bad%20id!", None, False, 422, "VALIDATION_ERROR"),
        ("GET", "/v1/topup-requests/not-a-uuid", None, False, 422, "VALIDATION_ERROR"),
        ("GET", f"/v1/topup-requests/{topup}", None, False, 404, "TOPUP_NOT_FOUND"),
        ("POST", f"/v1/topup-requests/{topup}/approve", None, True, 404, "TOPUP_NOT_FOUND"),
        ("POST", "/v1/topup-requests/123/approve", None, True, 422, "VALIDATION_ERROR"),
        ("GET", f"/v1/wallets/{co}?min_position=-1", None, False, 422, "VALIDATION_ERROR"),
        ("GET", f"/v1/wallets/{co}/transactions?limit=0", None, False, 422, "VALIDATION_ERROR"),
        ("GET", f"/v1/wallets/{co}/transactions?cursor=abc", None, False,
         422, "VALIDATION_ERROR"),
        ("GET", f"/v1/wallets/{co}/usage?group_by=planet", None, False, 422, "VALIDATION_ERROR"),
        ("POST", "/v1/wallets",
         {"company_id": f"x{co}", "currency": "USD", "rate_card": {"marketing": 0.1}}, True,
         422, "INVALID_AMOUNT"),
        ("POST", "/v1/wallets", {"company_id": co, "currency": "USD"}, True,
         409, "WALLET_ALREADY_EXISTS"),
        ("POST", "/v1/wallets", {"company_id": "bad id", "currency": "USD"}, True,
         422, "VALIDATION_ERROR"),
        ("PATCH", f"/v1/wallets/{co}", {}, True, 422, "INVALID_ARGUMENT"),
        ("PATCH", f"/v1/wallets/{co}", {"postpaid_limit": "-1"}, True, 422, "INVALID_AMOUNT"),
        ("POST", "/v1/transfers",
         {"from_company_id": co, "to_company_id": f"{co}-x", "amount": 5.5}, True,
         422, "INVALID_AMOUNT"),
        ("POST", "/v1/transfers",
         {"from_company_id": co, "to_company_id": f"nobody-{co}", "amount": "5"}, True,
         404, "WALLET_NOT_FOUND"),
        ("DELETE", f"/v1/wallets/{co}/senders/never-linked", None, True,
         409, "SENDER_NOT_LINKED"),
        ("POST", f"/v1/wallets/{co}/senders", {"waba_id": f"{co}-w1"}, True,
         409, "SENDER_ALREADY_LINKED"),
        ("GET", "/v1/nowhere", None, False, 404, "NOT_FOUND"),
        ("PUT", f"/v1/wallets/{co}", None, False, 405, "METHOD_NOT_ALLOWED"),
    ]  # fmt: skip


async def test_malformed_requests_are_4xx_with_a_code_and_write_nothing(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)
    before = pg_ledger.recorder.max_notification_id()
    for method, path, body, with_key, status, code in malformed_cases(company_id):
        headers = tokens.operator() | (key() if with_key else {})
        if isinstance(body, bytes):
            headers["content-type"] = "application/json"
            response = await api.request(method, path, content=body, headers=headers)
        else:
            response = await api.request(method, path, json=body, headers=headers)
        assert_error(response, status, code)
    assert pg_ledger.recorder.max_notification_id() == before


async def test_request_ids_are_echoed_and_carried_in_log_lines(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)
    given = await api.get(
        f"/v1/wallets/{company_id}", headers=tokens.tenant(company_id) | {"X-Request-ID": "req-42"}
    )
    assert given.headers["x-request-id"] == "req-42"
    generated = await api.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32
    unsafe = await api.get("/healthz", headers={"X-Request-ID": "bad id\twith tab"})
    assert unsafe.headers["x-request-id"] != "bad id\twith tab"
    capture = structlog.testing.LogCapture()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        await api.post(
            "/v1/topup-requests",
            json={"company_id": company_id, "amount": "-1", "currency": "USD"},
            headers=tokens.tenant(company_id) | key() | {"X-Request-ID": "req-43"},
        )
    finally:
        structlog.reset_defaults()
    lines = [e for e in capture.entries if e.get("request_id") == "req-43"]
    assert {e["event"] for e in lines} >= {"http_rejected", "http_request"}
    assert all(e["company_id"] == company_id for e in lines)


# -- the top-up lifecycle, idempotency, read-your-writes ------------------------------------


async def test_topup_lifecycle_through_http(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id, included_quota="0", postpaid_limit="0")
    tenant, operator = tokens.tenant(company_id), tokens.operator()
    body = {"company_id": company_id, "amount": "120.50", "currency": "USD", "note": "Q4"}
    requested = await api.post("/v1/topup-requests", json=body, headers=tenant | key())
    assert requested.status_code == 201, requested.text
    created = requested.json()
    assert created["status"] == "pending"
    assert created["amount"] == "120.5"
    topup = created["id"]
    seen = await api.get(
        f"/v1/topup-requests/{topup}?min_position={created['position']}", headers=tenant
    )
    assert seen.json()["status"] == "pending"

    approved = await api.post(f"/v1/topup-requests/{topup}/approve", headers=operator | key())
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "invoiced"
    assert approved.json()["invoice_number"].startswith("TOP-")
    paid_key = key()
    paid = await api.post(
        f"/v1/topup-requests/{topup}/mark-paid",
        json={"payment_reference": "bank-77"},
        headers=operator | paid_key,
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "completed"
    wallet = await api.get(
        f"/v1/wallets/{company_id}?min_position={paid.json()['position']}", headers=tenant
    )
    assert wallet.json()["balance"] == "120.5"
    assert wallet.json()["buckets"] == {
        "included": "0", "grants": "0", "prepaid": "120.5", "postpaid_used": "0",
    }  # fmt: skip
    detail = (await api.get(f"/v1/topup-requests/{topup}", headers=tenant)).json()
    assert (detail["status"], detail["payment_reference"]) == ("completed", "bank-77")
    assert detail["invoice_number"] == approved.json()["invoice_number"]
    entries = (
        await api.get(f"/v1/wallets/{company_id}/transactions?kind=topup", headers=tenant)
    ).json()
    assert [(e["amount"], e["counter_account"], e["balance_after"]) for e in entries["items"]] == [
        ("120.5", "cash_clearing", "120.5")
    ]

    # Invalid transitions are 409s; a retry with the same key replays the original answer.
    rejected = await api.post(
        f"/v1/topup-requests/{topup}/reject", json={"reason": "late"}, headers=operator | key()
    )
    assert_error(rejected, 409, "INVALID_TRANSITION")
    head = pg_ledger.recorder.max_notification_id()
    replay = await api.post(
        f"/v1/topup-requests/{topup}/mark-paid",
        json={"payment_reference": "bank-77"},
        headers=operator | paid_key,
    )
    assert (replay.status_code, replay.json()) == (paid.status_code, paid.json())
    assert pg_ledger.recorder.max_notification_id() == head
    conflict = await api.post(
        f"/v1/topup-requests/{topup}/mark-paid",
        json={"payment_reference": "bank-78"},
        headers=operator | paid_key,
    )
    assert_error(conflict, 409, "IDEMPOTENCY_CONFLICT")


async def test_same_key_same_body_returns_the_original_201_and_writes_nothing(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)
    headers = tokens.tenant(company_id) | key()
    body = {"company_id": company_id, "amount": "10", "currency": "USD"}
    first = await api.post("/v1/topup-requests", json=body, headers=headers)
    head = pg_ledger.recorder.max_notification_id()
    again = await api.post("/v1/topup-requests", json=body, headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())
    assert pg_ledger.recorder.max_notification_id() == head
    other = await api.post("/v1/topup-requests", json=body | {"amount": "11"}, headers=headers)
    assert_error(other, 409, "IDEMPOTENCY_CONFLICT")


async def test_concurrent_mark_paid_through_http_credits_once(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id, included_quota="0")
    topup = new_topup(pg_ledger, company_id, approve=True)
    operator = tokens.operator()

    async def mark_paid(i: int) -> httpx.Response:
        return await api.post(
            f"/v1/topup-requests/{topup}/mark-paid",
            json={"payment_reference": f"bank-{i}"},
            headers=operator | key(),
        )

    responses = await asyncio.gather(*(mark_paid(i) for i in range(12)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 11, [r.text for r in responses]
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} <= {
        "INVALID_TRANSITION",
        "CONCURRENCY_CONFLICT",
    }
    assert pg_ledger.get_wallet(company_id).prepaid == D(40)
    position = max(r.json()["position"] for r in responses if r.status_code == 200)
    entries = await api.get(
        f"/v1/wallets/{company_id}/transactions?kind=topup&min_position={position}",
        headers=operator,
    )
    assert len(entries.json()["items"]) == 1


async def test_reads_wait_for_min_position_and_say_so_when_it_is_not_reached(
    api: httpx.AsyncClient,
    pg_ledger: LedgerApplication,
    tokens: Tokens,
    company_id: str,
    live_projection: Projector,
) -> None:
    open_company(pg_ledger, company_id)
    tenant = tokens.tenant(company_id)
    for i in range(5):
        written = await api.post(
            "/v1/topup-requests",
            json={"company_id": company_id, "amount": f"{i + 1}", "currency": "USD"},
            headers=tenant | key(),
        )
        listed = await api.get(
            f"/v1/topup-requests?min_position={written.json()['position']}", headers=tenant
        )
        assert written.json()["id"] in {t["id"] for t in listed.json()["items"]}
    head = pg_ledger.recorder.max_notification_id() or 0
    far_ahead = head + 1_000_000
    response = await api.get(f"/v1/wallets/{company_id}?min_position={far_ahead}", headers=tenant)
    assert_error(response, 409, "UNKNOWN_POSITION")  # no write answered it: not worth a wait
    api_state = api._transport.app.state.api  # type: ignore[attr-defined]
    api_state.read_wait_timeout_s = 0.2

    async def stuck() -> int:
        return 0  # a projection that stopped short of the head

    api_state.reads.position = stuck
    response = await api.get(f"/v1/wallets/{company_id}?min_position={head}", headers=tenant)
    assert_error(response, 503, "PROJECTION_BEHIND")
    assert response.headers["retry-after"] == "1"


# -- read models through the API ------------------------------------------------------------


async def test_wallet_transactions_usage_and_stats(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id, included_quota="1", postpaid_limit="10")
    pg_ledger.link_sender(
        company_id=company_id, waba_id=f"{company_id}-w2", actor="op", idempotency_key="l2"
    )
    for i in range(6):
        pg_ledger.apply_usage(
            Usage(
                source="//t", event_id=f"{company_id}-{i}", company_id=company_id,
                waba_id=f"{company_id}-w{1 + i % 2}", conversation_id=f"c{i}",
                category="marketing" if i < 4 else "utility",
                status="failed" if i == 5 else "delivered", units=1,
            )
        )  # fmt: skip
    tenant = tokens.tenant(company_id)
    position = pg_ledger.recorder.max_notification_id()
    wallet = (
        await api.get(f"/v1/wallets/{company_id}?min_position={position}", headers=tenant)
    ).json()
    # 1 included, then 4 x 0.5 marketing + 0.25 utility = 2.25 -> 1 from included, 1.25 credit.
    assert wallet["balance"] == "-1.25"
    assert wallet["available"] == "8.75"
    assert wallet["buckets"] == {
        "included": "0", "grants": "0", "prepaid": "0", "postpaid_used": "1.25",
    }  # fmt: skip
    assert wallet["grants"] == []
    assert wallet["senders"] == sorted([f"{company_id}-w1", f"{company_id}-w2"])

    page1 = (await api.get(f"/v1/wallets/{company_id}/transactions?limit=3", headers=tenant)).json()
    page2 = (
        await api.get(
            f"/v1/wallets/{company_id}/transactions?limit=3&cursor={page1['next_cursor']}",
            headers=tenant,
        )
    ).json()
    positions = [e["position"] for e in page1["items"] + page2["items"]]
    assert positions == sorted(positions, reverse=True)
    assert len(positions) == 6  # opening grant + 5 billable usages
    assert page2["next_cursor"] is None
    by_sender = (
        await api.get(
            f"/v1/wallets/{company_id}/transactions?sender={company_id}-w2", headers=tenant
        )
    ).json()
    assert {e["sender_id"] for e in by_sender["items"]} == {f"{company_id}-w2"}

    usage = (
        await api.get(f"/v1/wallets/{company_id}/usage?group_by=category", headers=tenant)
    ).json()
    assert [
        (u["key"], u["billable_count"], u["failed_count"], u["amount"]) for u in usage["items"]
    ] == [
        ("marketing", 4, 0, "2"),
        ("utility", 1, 1, "0.25"),
    ]
    by_day = (await api.get(f"/v1/wallets/{company_id}/usage?group_by=day", headers=tenant)).json()
    assert sum(int(u["billable_count"]) for u in by_day["items"]) == 5

    stats = await api.get("/v1/admin/stats", headers=tokens.operator())
    assert stats.status_code == 200
    circulation = stats.json()["money_in_circulation"]["USD"]
    assert D(circulation["postpaid_used"]) >= D("1.25")
    assert D(circulation["grants"]) >= 0  # the shared test database may hold others' grants


async def test_ops_endpoints_and_openapi(api: httpx.AsyncClient) -> None:
    ready = await api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"event_store": "ok", "projections": "ok"}
    await api.get("/healthz")
    text = (await api.get("/metrics")).text
    assert 'ledger_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "ledger_projection_events_total" in text
    schema = (await api.get("/openapi.json")).json()
    paths = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    for endpoint in ENDPOINTS:
        template = endpoint.path.split("?")[0].replace("{co}-w1", "{waba_id}")
        template = template.replace("{co}", "{company_id}").replace("{topup}", "{topup_id}")
        assert (endpoint.method, template) in paths
    amount = schema["components"]["schemas"]["TopupRequestIn"]["properties"]["amount"]
    assert amount["type"] == "string"
    assert "bearer" in str(schema["components"]["securitySchemes"]).lower()
