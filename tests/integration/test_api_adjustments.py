"""Adjustments over HTTP under the four-eyes rule, against a real PostgreSQL: the
maker-checker matrix, money moving exactly once, and the trail in the audit export."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from ledger_service.audit.export import audit_rows
from ledger_service.service.ledger import LedgerApplication
from tests.conftest import Tokens
from tests.integration.test_api import assert_error, key, open_company

pytestmark = pytest.mark.integration
D = Decimal
CREDIT_20: dict[str, object] = {
    "direction": "credit",
    "amount": "20",
    "bucket": "prepaid",
    "reason": "outage #12",
}


async def request(
    api: httpx.AsyncClient, company: str, headers: dict[str, str], body: dict[str, object]
) -> httpx.Response:
    return await api.post(f"/v1/wallets/{company}/adjustments", json=body, headers=headers | key())


async def test_maker_checker_matrix(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id, included_quota="0")
    maker, checker = tokens.operator("ops-a"), tokens.operator("ops-b")
    created = await request(api, company_id, maker, CREDIT_20)
    assert created.status_code == 201, created.text
    pending = created.json()
    assert (pending["status"], pending["requested_by"]) == ("pending_approval", "ops-a")
    assert pg_ledger.get_wallet(company_id).prepaid == 0
    base = f"/v1/wallets/{company_id}/adjustments/{pending['id']}"

    head = pg_ledger.recorder.max_notification_id()
    assert_error(await api.post(f"{base}/approve", headers=maker | key()), 403, "NOT_PERMITTED")
    own_reject = await api.post(f"{base}/reject", json={"reason": "x"}, headers=maker | key())
    assert_error(own_reject, 403, "NOT_PERMITTED")
    tenant = tokens.tenant(company_id)
    assert_error(
        await api.post(f"{base}/approve", headers=tenant | key()), 403, "INSUFFICIENT_SCOPE"
    )
    other_company = f"/v1/wallets/{company_id}-peer/adjustments/{pending['id']}/approve"
    assert_error(
        await api.post(other_company, headers=checker | key()), 404, "ADJUSTMENT_NOT_FOUND"
    )
    assert pg_ledger.recorder.max_notification_id() == head  # refusals write nothing

    approved = await api.post(f"{base}/approve", headers=checker | key())
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["approved_by"]) == ("applied", "ops-b")
    assert pg_ledger.get_wallet(company_id).prepaid == D(20)
    again = await api.post(f"{base}/approve", headers=tokens.operator("ops-c") | key())
    assert_error(again, 409, "INVALID_TRANSITION")
    seen = await api.get(base, headers=checker)
    assert seen.json()["status"] == "applied"

    wallet = await api.get(
        f"/v1/wallets/{company_id}?min_position={approved.json()['position']}", headers=tenant
    )
    assert wallet.json()["buckets"]["prepaid"] == "20"
    entries = (
        await api.get(f"/v1/wallets/{company_id}/transactions?kind=adjustment", headers=tenant)
    ).json()["items"]
    assert [(e["amount"], e["counter_account"]) for e in entries] == [("20", "adjustments")]

    rows = [r for r in audit_rows(pg_ledger, company_id) if r["kind"] == "adjustment"]
    assert [(r["requested_by"], r["approved_by"], r["reason"]) for r in rows] == [
        ("ops-a", "ops-b", "outage #12")
    ]


async def test_a_rejected_adjustment_moves_nothing(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id, included_quota="0")
    created = (await request(api, company_id, tokens.operator("ops-a"), CREDIT_20)).json()
    base = f"/v1/wallets/{company_id}/adjustments/{created['id']}"
    rejected = await api.post(
        f"{base}/reject", json={"reason": "duplicate"}, headers=tokens.operator("ops-b") | key()
    )
    assert rejected.status_code == 200, rejected.text
    body = rejected.json()
    assert (body["status"], body["rejected_by"], body["rejection_reason"]) == (
        "rejected",
        "ops-b",
        "duplicate",
    )
    approve = await api.post(f"{base}/approve", headers=tokens.operator("ops-c") | key())
    assert_error(approve, 409, "INVALID_TRANSITION")
    assert pg_ledger.get_wallet(company_id).prepaid == 0


async def test_up_to_the_threshold_it_applies_at_once_and_a_debit_never_overdraws(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id, included_quota="0")
    pg_ledger.adjustment_approval_threshold = D(20)
    maker = tokens.operator("ops-a")
    applied = await request(api, company_id, maker, CREDIT_20)
    assert applied.status_code == 201, applied.text
    assert applied.json()["status"] == "applied"
    assert pg_ledger.get_wallet(company_id).prepaid == D(20)
    above = await request(api, company_id, maker, CREDIT_20 | {"amount": "20.01"})
    assert above.json()["status"] == "pending_approval"

    head = pg_ledger.recorder.max_notification_id()
    overdraw = CREDIT_20 | {"direction": "debit", "amount": "20.5"}
    assert_error(await request(api, company_id, maker, overdraw), 409, "INSUFFICIENT_FUNDS")
    bad_bucket = overdraw | {"bucket": "included"}
    assert_error(await request(api, company_id, maker, bad_bucket), 422, "VALIDATION_ERROR")
    number = CREDIT_20 | {"amount": 5}
    assert_error(await request(api, company_id, maker, number), 422, "INVALID_AMOUNT")
    assert pg_ledger.recorder.max_notification_id() == head


async def test_concurrent_approvals_apply_once(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id, included_quota="0")
    created = (await request(api, company_id, tokens.operator("ops-a"), CREDIT_20)).json()
    base = f"/v1/wallets/{company_id}/adjustments/{created['id']}"
    answers = await asyncio.gather(
        *(
            api.post(f"{base}/approve", headers=tokens.operator(f"ops-{n}") | key())
            for n in range(2, 10)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) == 1, [a.text for a in answers]
    assert set(statuses) <= {200, 409}
    assert pg_ledger.get_wallet(company_id).prepaid == D(20)
