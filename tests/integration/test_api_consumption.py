"""Synchronous consumption over HTTP against a real PostgreSQL: priced and drained like usage,
once per reference even under 20 concurrent retries, refused when it does not fit or passes a
hard cap (while message usage on a hard-capped category is still recorded), and counted in the
usage report and by verify."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ledger_service.audit.verify import verify
from ledger_service.domain.usage import Usage
from ledger_service.service.ledger import LedgerApplication
from tests.conftest import Tokens
from tests.integration.test_api import assert_error, open_company

pytestmark = pytest.mark.integration
D = Decimal
RATE_CARD = {"marketing": "1", "ai_summary": "0.25", "export_pdf": "2"}


def consume(units: int, reference: str, feature: str = "ai_summary") -> dict[str, Any]:
    return {"feature": feature, "units": units, "reference": reference}


async def test_consumption_is_charged_once_per_reference_and_reads_back(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id, included_quota="0", postpaid_limit="0", rate_card=RATE_CARD)
    pg_ledger.credit_wallet(
        company_id=company_id, amount="10", kind="grant", bucket="prepaid", reference="fund",
        actor="t", idempotency_key="fund",
    )  # fmt: skip
    path = f"/v1/wallets/{company_id}/consume"
    sender, tenant = tokens.sender(), tokens.tenant(company_id)
    assert_error(await api.post(path, json=consume(1, "r0"), headers=tenant), 403,
                 "INSUFFICIENT_SCOPE")  # fmt: skip
    assert_error(await api.post(path, json=consume(1, "r0"), headers=tokens.sender("other")),
                 404, "WALLET_NOT_FOUND")  # fmt: skip

    version = pg_ledger.get_wallet(company_id).version
    answers = await asyncio.gather(
        *(api.post(path, json=consume(4, "summary-1"), headers=sender) for _ in range(20))
    )
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert all(a.json() == answers[0].json() for a in answers), "every retry: the first charge"
    charged = answers[0].json()
    assert charged | {"position": None} == {
        "company_id": company_id, "feature": "ai_summary", "units": 4, "reference": "summary-1",
        "unit_price": "0.25", "amount": "1", "currency": "USD",
        "split": {"included": "0", "grants": "0", "prepaid": "1", "postpaid": "0"},
        "balance": "9", "available": "9", "position": None,
    }  # fmt: skip
    assert pg_ledger.get_wallet(company_id).version == version + 1, "one debit, written once"
    assert_error(await api.post(path, json=consume(5, "summary-1"), headers=sender), 409,
                 "IDEMPOTENCY_CONFLICT")  # fmt: skip
    assert_error(await api.post(path, json=consume(1, "x", "nope"), headers=sender), 409,
                 "UNKNOWN_CATEGORY")  # fmt: skip
    assert_error(await api.post(path, json=consume(5, "pdf", "export_pdf"), headers=sender),
                 409, "INSUFFICIENT_AVAILABLE_BALANCE")  # fmt: skip
    assert pg_ledger.get_wallet(company_id).version == version + 1, "refusals write nothing"

    read = await api.get(
        f"/v1/wallets/{company_id}/usage",
        params={"min_position": charged["position"], "group_by": "category"},
        headers=tenant,
    )
    assert read.status_code == 200, read.text
    assert "ai_summary" in read.text
    transactions = await api.get(f"/v1/wallets/{company_id}/transactions", headers=tenant)
    usage = [e for e in transactions.json()["items"] if e["kind"] == "usage"]
    assert [(e["reference"], e["category"], e["amount"]) for e in usage] == [
        (f"consume:{company_id}#summary-1", "ai_summary", "-1")
    ]


async def test_hard_caps_refuse_consumption_while_message_usage_is_recorded(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(
        pg_ledger, company_id, included_quota="0", postpaid_limit="100", rate_card=RATE_CARD
    )
    patch = await api.patch(
        f"/v1/wallets/{company_id}",
        json={"spending_caps": {
            "ai_summary": {"units": 10, "hard": True}, "marketing": {"units": 2, "hard": True},
        }},
        headers=tokens.operator() | {"Idempotency-Key": "caps"},
    )  # fmt: skip
    assert patch.status_code == 200, patch.text
    path, sender = f"/v1/wallets/{company_id}/consume", tokens.sender(company_id)
    assert (await api.post(path, json=consume(8, "a"), headers=sender)).status_code == 201
    assert_error(await api.post(path, json=consume(3, "b"), headers=sender), 409,
                 "SPENDING_CAP_REACHED")  # fmt: skip
    assert (await api.post(path, json=consume(2, "c"), headers=sender)).status_code == 201

    for n in range(4):  # twice the marketing cap: every message is still billed
        pg_ledger.apply_usage(Usage(
            source="//t", event_id=f"{company_id}-m{n}", company_id=company_id,
            waba_id=f"{company_id}-w1", conversation_id="c", category="marketing",
            status="delivered", units=1,
        ))  # fmt: skip
    wallet = pg_ledger.get_wallet(company_id)
    assert wallet.balance == D("-6.5"), "2.5 of summaries and 4 messages"
    assert_error(await api.post(path, json=consume(1, "d", "marketing"), headers=sender), 409,
                 "SPENDING_CAP_REACHED")  # fmt: skip
    read = await api.get(
        f"/v1/wallets/{company_id}",
        params={"min_position": pg_ledger.recorder.max_notification_id()},
        headers=tokens.tenant(company_id),
    )
    caps = read.json()["policies"]["spending_caps"]
    assert caps["ai_summary"] == {"units": 10, "amount": None, "hard": True}
    assert sorted(read.json()["blocked_categories"]) == ["ai_summary", "marketing"]
    report = verify(pg_ledger)
    assert report.ok, report.problems
