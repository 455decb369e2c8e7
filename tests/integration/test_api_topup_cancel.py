"""Cancelling a top-up request over HTTP: tenants their own pending ones, operators also
invoiced ones; exactly once, and a cancelled request can no longer be paid."""

from __future__ import annotations

import httpx
import pytest

from ledger_service.service.ledger import LedgerApplication
from tests.conftest import Tokens
from tests.integration.test_api import assert_error, key, new_topup, open_company

pytestmark = pytest.mark.integration


async def test_a_tenant_cancels_its_own_pending_request_once(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)
    topup = new_topup(pg_ledger, company_id)
    tenant = tokens.tenant(company_id)
    cancel_key = key()
    cancelled = await api.post(
        f"/v1/topup-requests/{topup}/cancel",
        json={"reason": "ordered twice"},
        headers=tenant | cancel_key,
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    position = cancelled.json()["position"]
    detail = await api.get(f"/v1/topup-requests/{topup}?min_position={position}", headers=tenant)
    assert detail.json()["status"] == "cancelled"
    assert detail.json()["cancelled_at"] is not None

    head = pg_ledger.recorder.max_notification_id()
    replay = await api.post(
        f"/v1/topup-requests/{topup}/cancel",
        json={"reason": "ordered twice"},
        headers=tenant | cancel_key,
    )
    assert (replay.status_code, replay.json()) == (200, cancelled.json())
    assert pg_ledger.recorder.max_notification_id() == head
    again = await api.post(f"/v1/topup-requests/{topup}/cancel", headers=tenant | key())
    assert_error(again, 409, "INVALID_TRANSITION")
    approve = await api.post(
        f"/v1/topup-requests/{topup}/approve", headers=tokens.operator() | key()
    )
    assert_error(approve, 409, "INVALID_TRANSITION")


async def test_an_invoiced_request_is_the_operators_to_cancel_and_then_cannot_be_paid(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)
    topup = new_topup(pg_ledger, company_id, approve=True)
    head = pg_ledger.recorder.max_notification_id()
    refused = await api.post(
        f"/v1/topup-requests/{topup}/cancel", headers=tokens.tenant(company_id) | key()
    )
    assert_error(refused, 403, "NOT_PERMITTED")
    assert pg_ledger.recorder.max_notification_id() == head

    operator = tokens.operator()
    cancelled = await api.post(f"/v1/topup-requests/{topup}/cancel", headers=operator | key())
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["invoice_number"].startswith("TOP-")
    paid = await api.post(
        f"/v1/topup-requests/{topup}/mark-paid",
        json={"payment_reference": "bank-1"},
        headers=operator | key(),
    )
    assert_error(paid, 409, "INVALID_TRANSITION")
    wallet = pg_ledger.get_wallet(company_id)
    assert wallet.prepaid == 0


async def test_a_cancel_reason_is_bounded(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)
    topup = new_topup(pg_ledger, company_id)
    response = await api.post(
        f"/v1/topup-requests/{topup}/cancel",
        json={"reason": "x" * 501},
        headers=tokens.tenant(company_id) | key(),
    )
    assert_error(response, 422, "VALIDATION_ERROR")
