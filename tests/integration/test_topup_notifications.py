"""Top-up lifecycle notifications on the notifications topic (real PostgreSQL and broker):
``ledger.topup.invoiced | completed | rejected | cancelled`` with stable ids, the invoice
number and amounts, at least once through a crash between publishing and saving the position."""

from __future__ import annotations

import json
import uuid
from typing import Any
from uuid import UUID

import pytest

from ledger_service.bootstrap import build_relay
from ledger_service.ingestion.topics import ensure_topics
from ledger_service.service.ledger import LedgerApplication
from tests.integration.ingestion_support import open_company, read_all
from tests.integration.test_policies import _crash_once, reactions_container, relay_all

pytestmark = pytest.mark.integration


def topup(ledger: LedgerApplication, company: str, amount: str, key: str) -> UUID:
    result = ledger.request_topup(
        company_id=company, amount=amount, currency="USD", actor="tenant", idempotency_key=key
    )
    return UUID(result["topup_id"])


async def test_each_top_up_step_is_published_once_per_id_with_its_invoice(
    fresh_database_url: str, kafka_bootstrap: str
) -> None:
    notifications = f"notifications-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, {notifications: 1})
    container = reactions_container(fresh_database_url, kafka_bootstrap, notifications)
    ledger = container.ledger
    company = f"mailer-{uuid.uuid4().hex[:6]}"
    try:
        open_company(ledger, company, ["s1"])
        ledger.configure_wallet(
            company_id=company, tax_percent="18", actor="op", idempotency_key="tax"
        )
        paid, rejected, cancelled = (topup(ledger, company, "100", k) for k in "abc")
        ledger.approve_topup(topup_id=paid, actor="op", idempotency_key="approve-a")
        ledger.mark_topup_paid(
            topup_id=paid, payment_reference="bank-9", actor="op", idempotency_key="paid-a"
        )
        ledger.reject_topup(
            topup_id=rejected, reason="duplicate", actor="op", idempotency_key="reject-b"
        )
        ledger.approve_topup(topup_id=cancelled, actor="op", idempotency_key="approve-c")
        ledger.cancel_topup(
            topup_id=cancelled, reason="changed mind", actor="op", idempotency_key="cancel-c",
            tenant_company_id=None,
        )  # fmt: skip

        relay = build_relay(container)
        relay.follower.done = _crash_once(relay.follower.done)  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            await relay_all(relay, kafka_bootstrap)
        await relay_all(relay, kafka_bootstrap)  # the same batch again, with the same ids
        records = await read_all(kafka_bootstrap, notifications, expected=10)
    finally:
        container.close()

    assert len(records) == 10
    published = {json.loads(r.value)["id"]: json.loads(r.value) for r in records}
    assert len(published) == 5  # every step twice (the crash), under one id each
    assert {r.key for r in records} == {company.encode()}
    steps: dict[tuple[str, str], Any] = {
        (m["data"]["topup_id"], m["type"].removeprefix("ledger.topup.")): m
        for m in published.values()
    }
    assert set(steps) == {
        (str(paid), "invoiced"), (str(paid), "completed"), (str(rejected), "rejected"),
        (str(cancelled), "invoiced"), (str(cancelled), "cancelled"),
    }  # fmt: skip
    invoiced = steps[(str(paid), "invoiced")]
    assert invoiced["source"] == "//ledger/topups"
    assert invoiced["subject"] == company
    assert invoiced["data"]["invoice_number"].startswith("TOP-")
    assert (invoiced["data"]["amount"], invoiced["data"]["tax"], invoiced["data"]["total"]) == (
        "100",
        "18",
        "118",
    )  # fmt: skip — the tax priced in the same save as the invoice
    assert invoiced["data"]["status"] == "invoiced"
    completed = steps[(str(paid), "completed")]["data"]
    assert completed["payment_reference"] == "bank-9"
    assert completed["invoice_number"] == invoiced["data"]["invoice_number"]
    assert steps[(str(rejected), "rejected")]["data"]["reason"] == "duplicate"
    assert steps[(str(rejected), "rejected")]["data"]["invoice_number"] is None
    assert steps[(str(cancelled), "cancelled")]["data"]["reason"] == "changed mind"
