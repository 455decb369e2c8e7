"""Credit grants against a real PostgreSQL: over HTTP (issue, list, void; 403/404/409/422), the
read model and the cycle scheduler expiring them from it, an expiry racing the Kafka consumer's
usage batches (applied once; usage drains the grant only before it closed), and the CLI."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest

from ledger_service.audit.export import audit_rows
from ledger_service.audit.verify import verify
from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.domain.grants import grant_parts
from ledger_service.domain.ids import wallet_id
from ledger_service.domain.usage import Usage
from ledger_service.domain.wallet import Wallet
from ledger_service.reactions.cycles import run_cycles
from ledger_service.service.ledger import LedgerApplication
from projections.tables import ReadModelTables
from tests.conftest import Tokens
from tests.integration.ingestion_support import (
    ingestion_settings,
    new_topics,
    produce,
    running_consumer,
    usage_event,
    wait_until_counted,
)
from tests.integration.ingestion_support import open_company as open_ingesting_company
from tests.integration.test_api import assert_error, key, open_company
from tests.integration.test_audit_cli import run_ledger

pytestmark = pytest.mark.integration
D = Decimal


def grant_body(reference: str, amount: str = "10", **extra: Any) -> dict[str, Any]:
    return {"amount": amount, "reason": "welcome offer", "reference": reference} | extra


async def test_an_operator_grants_lists_and_voids_credit_over_http(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id, included_quota="0")
    path = f"/v1/wallets/{company_id}/grants"
    operator, tenant = tokens.operator("ops-a"), tokens.tenant(company_id)
    soon = (datetime.now(UTC) + timedelta(days=7)).isoformat()

    denied = await api.post(path, json=grant_body("g1"), headers=tenant | key())
    assert_error(denied, 403, "INSUFFICIENT_SCOPE")
    created = await api.post(
        path, json=grant_body("g1", expires_at=soon, priority=1), headers=operator | key()
    )
    assert created.status_code == 201, created.text
    g1 = created.json()
    assert (g1["status"], g1["amount"], g1["remaining"], g1["priority"]) == (
        "active", "10", "10", 1,
    )  # fmt: skip
    assert (g1["reference"], g1["granted_by"], g1["reason"]) == ("g1", "ops-a", "welcome offer")
    again = await api.post(path, json=grant_body("g1"), headers=operator | key())
    assert_error(again, 409, "GRANT_ALREADY_EXISTS")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert_error(
        await api.post(path, json=grant_body("g2", expires_at=past), headers=operator | key()),
        409,
        "NOT_IN_FUTURE",
    )
    naive = await api.post(
        path, json=grant_body("g2", expires_at="2099-01-01T00:00:00"), headers=operator | key()
    )
    assert naive.status_code == 422, naive.text
    g2 = (await api.post(path, json=grant_body("g2", "4"), headers=operator | key())).json()

    pg_ledger.apply_usage(_usage(company_id, "m1", units=6))  # 3.00, from g1 (priority 1)
    position = max(g2["position"], _position(pg_ledger, company_id))
    wallet = (
        await api.get(f"/v1/wallets/{company_id}?min_position={position}", headers=tenant)
    ).json()
    assert wallet["buckets"] == {
        "included": "0", "grants": "11", "prepaid": "0", "postpaid_used": "0",
    }  # fmt: skip
    assert wallet["balance"] == "11"
    assert [(g["reference"], g["remaining"]) for g in wallet["grants"]] == [
        ("g1", "7"),
        ("g2", "4"),
    ]
    listed = (await api.get(path, headers=tenant)).json()
    assert [g["id"] for g in listed] == [g1["id"], g2["id"]]

    void_path = f"{path}/{g1['id']}"
    assert_error(await api.delete(void_path, headers=tenant | key()), 403, "INSUFFICIENT_SCOPE")
    voided = await api.delete(void_path, headers=operator | key())
    assert voided.status_code == 200, voided.text
    assert (voided.json()["status"], voided.json()["remaining"]) == ("voided", "0")
    assert_error(await api.delete(void_path, headers=operator | key()), 409, "GRANT_CLOSED")
    unknown = f"{path}/00000000-0000-0000-0000-000000000001"
    assert_error(await api.delete(unknown, headers=operator | key()), 404, "GRANT_NOT_FOUND")

    after = voided.json()["position"]
    wallet = (
        await api.get(f"/v1/wallets/{company_id}?min_position={after}", headers=tenant)
    ).json()
    assert (wallet["buckets"]["grants"], wallet["balance"]) == ("4", "4")
    assert [g["reference"] for g in wallet["grants"]] == ["g2"]
    entries = (await api.get(f"/v1/wallets/{company_id}/transactions", headers=tenant)).json()[
        "items"
    ]
    assert [(e["kind"], e["amount"], e["split"].get("grants")) for e in entries] == [
        ("expiry", "-7", "7"),
        ("usage", "-3", "3"),
        ("grant", "4", "4"),
        ("grant", "10", "10"),
    ]
    rows = [r for r in audit_rows(pg_ledger, company_id) if r["reference"].startswith("grant:")]
    assert {(r["requested_by"], r["reason"]) for r in rows} == {("ops-a", "welcome offer")}


def _usage(company: str, event_id: str, units: int) -> Usage:
    return Usage("//wa", f"{company}-{event_id}", company, f"{company}-w1", "c", "marketing",
                 "delivered", units)  # fmt: skip


def _position(ledger: LedgerApplication, company: str) -> int:
    positions = ledger.command_store.select_positions(wallet_id(company))
    return max(position for _, position in positions)


async def test_the_scheduler_expires_a_grant_found_in_the_read_model(
    api: httpx.AsyncClient,
    pg_ledger: LedgerApplication,
    tokens: Tokens,
    company_id: str,
    database_url: str,
) -> None:
    open_company(pg_ledger, company_id, included_quota="0")
    expires = datetime.now(UTC) + timedelta(hours=1)
    pg_ledger.issue_grant(
        company_id=company_id, amount=D(10), reason="r", reference="g", expires_at=expires,
        actor="ops", idempotency_key="g",
    )  # fmt: skip
    tenant = tokens.tenant(company_id)
    position = _position(pg_ledger, company_id)
    await api.get(f"/v1/wallets/{company_id}?min_position={position}", headers=tenant)
    tables = ReadModelTables()

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(database_url)

    with connect() as conn:
        (due_at,) = conn.execute(
            f"SELECT next_grant_expiry_at FROM {tables['rm_wallet_balances']} "
            "WHERE company_id = %s",
            (company_id,),
        ).fetchone() or (None,)
    assert due_at == expires
    run_cycles(pg_ledger, connect, tables, expires - timedelta(seconds=1))
    assert pg_ledger.get_wallet(company_id).granted == D(10)  # not yet
    run_cycles(pg_ledger, connect, tables, expires + timedelta(days=3))  # after downtime
    pg_ledger.evict([wallet_id(company_id)])
    wallet = pg_ledger.get_wallet(company_id)
    assert (wallet.granted, wallet.balance) == (0, 0)
    after = _position(pg_ledger, company_id)
    row = (await api.get(f"/v1/wallets/{company_id}?min_position={after}", headers=tenant)).json()
    assert (row["buckets"]["grants"], row["grants"]) == ("0", [])
    # Found again only if the read model were stale; the aggregate finds nothing left to do.
    run_cycles(pg_ledger, connect, tables, expires + timedelta(days=3))
    closed = [
        e for e in pg_ledger.events.get(wallet_id(company_id)) if isinstance(e, Wallet.GrantClosed)
    ]
    assert [(e.status, e.remainder) for e in closed] == [("expired", D(10))]


async def test_an_expiry_racing_usage_batches_applies_once_and_usage_drains_the_right_bucket(
    fresh_ledger: LedgerApplication, fresh_database_url: str, kafka_bootstrap: str, company_id: str
) -> None:
    ledger = fresh_ledger
    topics = await new_topics(kafka_bootstrap)
    sender = f"{company_id}-w1"
    open_ingesting_company(ledger, company_id, [sender], prepaid="100")
    ledger.issue_grant(
        company_id=company_id, amount=D(120), reason="r", reference="g", actor="ops",
        expires_at=datetime.now(UTC) + timedelta(hours=1), idempotency_key="g",
    )  # fmt: skip
    first, second = 100, 200  # 0.50 each: 150 in all; the grant alone would last 240
    expired: list[int] = []
    stop = threading.Event()
    scheduler = build_ledger(
        Settings(environment="test", database_url=fresh_database_url, db_pool_size=2),
        fresh_database_url,
    )

    def expire_while_consuming() -> None:
        """Once the second wave is being applied, expire the grant as often as possible."""
        wallet = wallet_id(company_id)
        started = len(scheduler.command_store.select_positions(wallet))
        while len(scheduler.command_store.select_positions(wallet)) == started:
            if stop.wait(0.002):
                return
        later = datetime.now(UTC) + timedelta(days=1)
        while not stop.is_set():
            expired.append(
                scheduler.start_due_cycles([wallet_id(company_id)], now=later, actor="x")
            )
            stop.wait(0.005)

    racer = threading.Thread(target=expire_while_consuming)
    wave = [usage_event(company_id, sender) for _ in range(first + second)]
    try:
        async with running_consumer(
            # Small batches: the expiry can land between two of them.
            ingestion_settings(fresh_database_url, kafka_bootstrap, topics, batch_size_max=10)
        ) as run:
            await produce(kafka_bootstrap, topics.usage, wave[:first])
            await wait_until_counted(first, run)
            # The second wave's batches and the expiry race for the wallet.
            racer.start()
            await produce(kafka_bootstrap, topics.usage, wave[first:])
            await wait_until_counted(first + second, run)
            assert run.total("applied") == first + second
    finally:
        stop.set()
        if racer.is_alive():
            racer.join()
        scheduler.close()
    assert sum(expired) >= 1  # the grant, and perhaps billing cycles: never twice

    events = list(ledger.events.get(wallet_id(company_id)))
    (closed,) = [e for e in events if isinstance(e, Wallet.GrantClosed)]
    usage = [e for e in events if isinstance(e, Wallet.Debited) and e.kind == "usage"]
    assert len(usage) == first + second
    left = D(120)
    for e in sorted(usage, key=lambda e: e.originator_version):
        # Before the close, usage drains the grant while it lasts; after it, never.
        drawn = sum((p for _, p in grant_parts(e.split)), D(0))
        before_close = e.originator_version < closed.originator_version
        assert drawn == (min(D("0.5"), left) if before_close else 0)
        left -= drawn
    assert closed.remainder == left
    ledger.evict([wallet_id(company_id)])
    assert ledger.get_wallet(company_id).balance == D(100) + D(120) - D(150) - closed.remainder
    report = verify(ledger)
    assert report.ok, report.problems


def test_ledger_grant_issues_and_voids_from_a_script(
    fresh_ledger: LedgerApplication, fresh_database_url: str
) -> None:
    open_company(fresh_ledger, "acme", included_quota="0")
    expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S")
    issue = ("grant", "issue", "--company", "acme", "--amount", "12.5", "--reason", "goodwill",
             "--reference", "ticket-42", "--expires-at", expires, "--priority", "3",
             "--operator", "ops-a")  # fmt: skip
    done = run_ledger(fresh_database_url, *issue)
    assert done.returncode == 0, done.stderr
    grant = json.loads(done.stdout)
    assert (grant["amount"], grant["remaining"], grant["priority"]) == ("12.5", "12.5", 3)
    assert grant["expires_at"].startswith(expires)
    again = run_ledger(fresh_database_url, *issue)
    assert (again.returncode, "GRANT_ALREADY_EXISTS" in again.stderr) == (1, True)
    void = ("grant", "void", "--company", "acme", "--grant", grant["grant_id"],
            "--operator", "ops-b")  # fmt: skip
    voided = run_ledger(fresh_database_url, *void)
    assert (voided.returncode, json.loads(voided.stdout)["status"]) == (0, "voided")
    closed = run_ledger(fresh_database_url, *void)
    assert (closed.returncode, "GRANT_CLOSED" in closed.stderr) == (1, True)
    fresh_ledger.evict([wallet_id("acme")])
    assert fresh_ledger.get_wallet("acme").balance == 0
    verified = run_ledger(fresh_database_url, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
