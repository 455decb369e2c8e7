"""Usage refunds against a real PostgreSQL: over HTTP (once, 404/409/403), concurrently (one
wins), and from the Kafka consumer when a billed message is reported failed (once, even when the
report is redelivered)."""

from __future__ import annotations

from decimal import Decimal

import httpx
import psycopg
import pytest

from ledger_service.audit.export import audit_rows
from ledger_service.audit.verify import verify
from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.domain.errors import UsageAlreadyRefunded, UsageNotRefundable
from ledger_service.domain.usage import Usage
from ledger_service.domain.wallet import Wallet
from ledger_service.service.ledger import LedgerApplication
from tests.conftest import Tokens
from tests.integration.ingestion_support import (
    ingestion_settings,
    new_topics,
    produce,
    running_consumer,
    usage_event,
    wait_until_consumed,
    wait_until_counted,
)
from tests.integration.ingestion_support import open_company as open_ingesting_company
from tests.integration.test_api import assert_error, key, open_company
from tests.integration.test_postgres_ledger import run_at_once

pytestmark = pytest.mark.integration
D = Decimal
SOURCE = "//messaging/whatsapp"


def bill(ledger: LedgerApplication, company: str, event_id: str, units: int) -> None:
    """Usage ids are made unique per company: the tests share one database."""
    ledger.apply_usage(
        Usage(SOURCE, f"{company}-{event_id}", company, f"{company}-w1", "c1", "marketing",
              "delivered", units)
    )  # fmt: skip


def body(event_id: str) -> dict[str, object]:
    return {"usage": {"source": SOURCE, "id": event_id}, "reason": "reported undelivered"}


def refund_credits(ledger: LedgerApplication, company: str) -> list[Wallet.Credited]:
    wallet = ledger.get_wallet(company)
    return [
        e
        for e in ledger.events.get(wallet.id)
        if isinstance(e, Wallet.Credited) and e.kind == "refund"
    ]


async def test_an_operator_refunds_a_billed_usage_event_once(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id)  # 5 included, 100 postpaid credit, marketing 0.5
    bill(pg_ledger, company_id, "m1", units=14)  # 7: 5 included + 2 on credit
    path = f"/v1/wallets/{company_id}/refunds"
    operator, tenant = tokens.operator("ops-a"), tokens.tenant(company_id)

    assert_error(
        await api.post(path, json=body(f"{company_id}-m1"), headers=tenant | key()),
        403,
        "INSUFFICIENT_SCOPE",
    )
    created = await api.post(path, json=body(f"{company_id}-m1"), headers=operator | key())
    assert created.status_code == 201, created.text
    refund = created.json()
    assert (refund["amount"], refund["returned_to"]) == ("7", {"included": "5", "postpaid": "2"})
    usage = {"source": SOURCE, "id": f"{company_id}-m1"}
    assert (refund["usage"], refund["refunded_by"]) == (usage, "ops-a")
    again = await api.post(path, json=body(f"{company_id}-m1"), headers=operator | key())
    assert_error(again, 409, "USAGE_ALREADY_REFUNDED")
    assert_error(
        await api.post(path, json=body(f"{company_id}-m2"), headers=operator | key()),
        404,
        "USAGE_NOT_FOUND",
    )
    peer = f"{company_id}-peer"
    open_company(pg_ledger, peer)
    foreign = await api.post(
        f"/v1/wallets/{peer}/refunds", json=body(f"{company_id}-m1"), headers=operator | key()
    )
    assert_error(foreign, 404, "USAGE_NOT_FOUND")

    wallet = await api.get(
        f"/v1/wallets/{company_id}?min_position={refund['position']}", headers=tenant
    )
    assert wallet.json()["buckets"]["included"] == "5"
    assert wallet.json()["buckets"]["postpaid_used"] == "0"
    entries = (
        await api.get(f"/v1/wallets/{company_id}/transactions?kind=refund", headers=tenant)
    ).json()["items"]
    assert [(e["amount"], e["reference"]) for e in entries] == [
        ("7", f"refund:{SOURCE}#{company_id}-m1")
    ]
    assert len(refund_credits(pg_ledger, company_id)) == 1
    rows = [r for r in audit_rows(pg_ledger, company_id) if r["kind"] == "refund"]
    assert [(r["requested_by"], r["reason"]) for r in rows] == [("ops-a", "reported undelivered")]


def test_concurrent_refunds_of_one_usage_event_refund_once(
    pg_ledger: LedgerApplication, company_id: str
) -> None:
    open_company(pg_ledger, company_id, included_quota="0")
    bill(pg_ledger, company_id, "m1", units=4)  # 2 on credit

    outcomes = run_at_once(
        10,
        lambda i: pg_ledger.refund_usage(
            company_id=company_id,
            usage_source=SOURCE,
            usage_id=f"{company_id}-m1",
            reason="duplicate send",
            actor=f"ops-{i}",
            idempotency_key=f"refund-{i}",
        ),
    )

    successes = [o for o in outcomes if isinstance(o, dict)]
    assert len(successes) == 1, outcomes
    assert all(isinstance(o, UsageAlreadyRefunded) for o in outcomes if o not in successes)
    assert len(refund_credits(pg_ledger, company_id)) == 1
    assert pg_ledger.get_wallet(company_id).postpaid_used == 0


async def test_a_late_failed_status_refunds_once_even_when_redelivered(
    fresh_ledger: LedgerApplication,
    fresh_database_url: str,
    kafka_bootstrap: str,
    company_id: str,
) -> None:
    pg_ledger, database_url = fresh_ledger, fresh_database_url
    topics = await new_topics(kafka_bootstrap)
    sender = f"{company_id}-w1"
    open_ingesting_company(pg_ledger, company_id, [sender], prepaid="10")
    delivered = usage_event(company_id, sender, event_id="msg-1", units=4)  # 2.00
    failed = usage_event(company_id, sender, event_id="msg-1", units=4, status="failed")
    await produce(kafka_bootstrap, topics.usage, [delivered])
    async with running_consumer(ingestion_settings(database_url, kafka_bootstrap, topics)) as r:
        await wait_until_consumed(pg_ledger, topics.usage, 1)
        pg_ledger.evict([pg_ledger.get_wallet(company_id).id])
        assert pg_ledger.get_wallet(company_id).prepaid == D(8)
        await produce(kafka_bootstrap, topics.usage, [failed, failed])  # redelivered report
        await wait_until_counted(3, r)
        assert (r.total("applied"), r.total("refunded"), r.total("duplicates")) == (1, 1, 1)
    pg_ledger.evict([pg_ledger.get_wallet(company_id).id])
    assert pg_ledger.get_wallet(company_id).prepaid == D(10)
    assert len(refund_credits(pg_ledger, company_id)) == 1
    report = verify(pg_ledger)
    assert report.ok, report.problems


def test_usage_keys_written_before_refunds_are_migrated_and_refused_clearly(
    fresh_database_url: str,
) -> None:
    """A database from before refunds: its usage-key table gains the charge columns at start;
    its old rows say where nothing was charged, so refunding them is refused, not guessed."""
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE ledger_usage_keys (source text NOT NULL, event_id text NOT NULL, "
            "company_id text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(), "
            "PRIMARY KEY (source, event_id))"
        )
        conn.execute("INSERT INTO ledger_usage_keys VALUES ('//old', 'm1', 'acme')")
    ledger = build_ledger(Settings(environment="test", db_pool_size=2), fresh_database_url)
    try:
        ledger.open_wallet(company_id="acme", currency="USD", actor="op", idempotency_key="o")
        with pytest.raises(UsageNotRefundable, match="before refunds were tracked"):
            ledger.refund_usage(
                company_id="acme",
                usage_source="//old",
                usage_id="m1",
                reason="r",
                actor="op",
                idempotency_key="r",
            )
    finally:
        ledger.close()
