"""Holds against a real PostgreSQL: over HTTP (place, list, release; scopes; refusals), settled by
a usage event through the Kafka consumer even when redelivered, expired by the scheduler from the
read model, and concurrent requests against a pool with room for exactly ten."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest

from ledger_service.audit.verify import verify
from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.domain.errors import InsufficientAvailableBalance
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
from tests.integration.test_postgres_ledger import run_at_once

pytestmark = pytest.mark.integration
D = Decimal


def sender_token(tokens: Tokens, company: str | None = None) -> dict[str, str]:
    return tokens.sender(company)


def body(company: str, reference: str, units: int = 2, **extra: Any) -> dict[str, Any]:
    return {"waba_id": f"{company}-w1", "category": "marketing", "units": units,
            "reference": reference} | extra  # fmt: skip


async def test_a_sender_places_lists_and_releases_holds_over_http(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id, included_quota="0", postpaid_limit="3")  # 0.5 each
    path = f"/v1/wallets/{company_id}/holds"
    sender, tenant = sender_token(tokens), tokens.tenant(company_id)
    other = sender_token(tokens, f"{company_id}-other")

    assert_error(await api.post(path, json=body(company_id, "m1"), headers=tenant), 403,
                 "INSUFFICIENT_SCOPE")  # fmt: skip
    assert_error(await api.post(path, json=body(company_id, "m1"), headers=other), 404,
                 "WALLET_NOT_FOUND")  # fmt: skip
    placed = await api.post(path, json=body(company_id, "m1", units=4), headers=sender)
    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert (hold["amount"], hold["available"], hold["status"]) == ("2", "1", "active")
    assert hold["currency"] == "USD"
    again = await api.post(path, json=body(company_id, "m1", units=4), headers=sender)
    assert (again.status_code, again.json()["hold_id"]) == (201, hold["hold_id"])
    changed = await api.post(path, json=body(company_id, "m1", units=1), headers=sender)
    assert_error(changed, 409, "HOLD_CONFLICT")
    refused = await api.post(path, json=body(company_id, "m2", units=3), headers=sender)
    assert_error(refused, 409, "INSUFFICIENT_AVAILABLE_BALANCE")
    assert_error(
        await api.post(path, json=body(company_id, "m3", category="nope"), headers=sender),
        409,
        "UNKNOWN_CATEGORY",
    )
    assert_error(
        await api.post(path, json=body(company_id, "m3", waba_id="nobody"), headers=sender),
        409,
        "UNKNOWN_SENDER",
    )

    wallet = (
        await api.get(f"/v1/wallets/{company_id}?min_position={hold['position']}", headers=tenant)
    ).json()
    assert (wallet["held"], wallet["available"], wallet["balance"]) == ("2", "1", "0")
    listed = (await api.get(path, headers=tenant)).json()
    assert [(h["reference"], h["amount"]) for h in listed] == [("m1", "2")]
    authorization = await api.get(
        f"/v1/wallets/{company_id}/authorization?waba_id={company_id}-w1&category=marketing"
        "&units=3",
        headers=tenant,
    )
    assert authorization.status_code == 200, authorization.text
    answer = authorization.json()  # pre-send authorization sees the hold too
    assert (answer["allowed"], answer["reason"]) == (False, "INSUFFICIENT_AVAILABLE_BALANCE")

    release = f"{path}/{hold['hold_id']}"
    assert_error(await api.delete(release, headers=tenant | key()), 403, "INSUFFICIENT_SCOPE")
    released = await api.delete(release, headers=sender)
    assert (released.status_code, released.json()["status"]) == (200, "released")
    assert_error(await api.delete(release, headers=sender | key()), 404, "HOLD_NOT_FOUND")
    after = released.json()["position"]
    wallet = (
        await api.get(f"/v1/wallets/{company_id}?min_position={after}", headers=tenant)
    ).json()
    assert (wallet["held"], wallet["available"]) == ("0", "3")
    assert (await api.get(path, headers=tenant)).json() == []


def place(ledger: LedgerApplication, company_id: str, i: int) -> object:
    return ledger.place_hold(
        company_id=company_id, waba_id=f"{company_id}-w1", category="marketing", units=1,
        reference=f"m{i}", actor="s", idempotency_key=f"h{i}",
    )  # fmt: skip


async def test_fifty_concurrent_http_holds_are_grouped_and_never_overspend(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    open_company(pg_ledger, company_id, included_quota="0", postpaid_limit="5")  # 10 x 0.5
    path = f"/v1/wallets/{company_id}/holds"
    sender = sender_token(tokens)
    answers = await asyncio.gather(
        *(api.post(path, json=body(company_id, f"m{i}", units=1), headers=sender)
          for i in range(50))
    )  # fmt: skip
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 10 + [409] * 40
    refused = {a.json()["error"]["code"] for a in answers if a.status_code == 409}
    assert refused == {"INSUFFICIENT_AVAILABLE_BALANCE"}
    pg_ledger.evict([wallet_id(company_id)])
    wallet = pg_ledger.get_wallet(company_id)
    assert (wallet.held, wallet.available) == (D(5), D(0))
    positions = {a.json()["position"] for a in answers if a.status_code == 201}
    assert len(positions) < 10  # committed in groups: several holds share a save


def test_concurrent_holds_never_overspend_a_pool(
    pg_ledger: LedgerApplication, api_settings: Settings, database_url: str, company_id: str
) -> None:
    """50 requests through two application instances (two processes' worth) against a pool
    with room for exactly ten: ten granted, the rest refused, nothing over."""
    open_company(pg_ledger, company_id, included_quota="0", postpaid_limit="5")  # 10 x 0.5
    other = build_ledger(api_settings, database_url)
    apps = (pg_ledger, other)
    try:
        outcomes = run_at_once(50, lambda i: place(apps[i % 2], company_id, i))
    finally:
        other.close()
    granted = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, InsufficientAvailableBalance)]
    assert (len(granted), len(refused)) == (10, 40), [type(o) for o in outcomes]
    pg_ledger.evict([wallet_id(company_id)])
    wallet = pg_ledger.get_wallet(company_id)
    assert (wallet.held, wallet.available) == (D(5), D(0))


async def test_the_scheduler_expires_holds_found_in_the_read_model(
    api: httpx.AsyncClient,
    pg_ledger: LedgerApplication,
    tokens: Tokens,
    company_id: str,
    database_url: str,
) -> None:
    open_company(pg_ledger, company_id, included_quota="0", postpaid_limit="10")
    placed = pg_ledger.place_hold(
        company_id=company_id, waba_id=f"{company_id}-w1", category="marketing", units=2,
        reference="m1", ttl_s=60, actor="s", idempotency_key="h",
    )  # fmt: skip
    tenant = tokens.tenant(company_id)
    await api.get(f"/v1/wallets/{company_id}?min_position={placed['position']}", headers=tenant)
    tables = ReadModelTables()

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(database_url)

    expires = datetime.fromisoformat(placed["expires_at"])
    run_cycles(pg_ledger, connect, tables, expires - timedelta(seconds=1))
    assert pg_ledger.get_wallet(company_id).held == D(1)
    run_cycles(pg_ledger, connect, tables, expires + timedelta(hours=2))  # after downtime
    pg_ledger.evict([wallet_id(company_id)])
    assert pg_ledger.get_wallet(company_id).held == 0
    closed = [
        (e.status, e.amount)
        for e in pg_ledger.events.get(wallet_id(company_id))
        if isinstance(e, Wallet.HoldClosed)
    ]
    assert closed == [("expired", D(1))]


async def test_a_usage_event_settles_its_hold_once_even_when_redelivered(
    fresh_ledger: LedgerApplication, fresh_database_url: str, kafka_bootstrap: str, company_id: str
) -> None:
    ledger = fresh_ledger
    topics = await new_topics(kafka_bootstrap)
    sender = f"{company_id}-w1"
    open_ingesting_company(ledger, company_id, [sender], prepaid="10")  # marketing 0.5
    for reference in ("msg-1", "msg-2"):
        ledger.place_hold(
            company_id=company_id, waba_id=sender, category="marketing", units=4,
            reference=reference, actor="s", idempotency_key=reference,
        )  # fmt: skip
    delivered = usage_event(company_id, sender, event_id="msg-1", units=3)  # below the hold
    failed = usage_event(company_id, sender, event_id="msg-2", units=4, status="failed")
    async with running_consumer(
        ingestion_settings(fresh_database_url, kafka_bootstrap, topics)
    ) as run:
        await produce(kafka_bootstrap, topics.usage, [delivered, delivered, failed, delivered])
        await wait_until_counted(4, run)
    ledger.evict([wallet_id(company_id)])
    wallet = ledger.get_wallet(company_id)
    assert (wallet.held, wallet.balance) == (D(0), D("8.5"))  # 1.5 charged, the rest freed
    closed = [
        (e.reference, e.status)
        for e in ledger.events.get(wallet_id(company_id))
        if isinstance(e, Wallet.HoldClosed)
    ]
    assert closed == [("msg-1", "settled"), ("msg-2", "released")]
    report = verify(ledger)
    assert report.ok, report.problems


def test_an_expiry_racing_the_settlement_closes_the_hold_once(
    pg_ledger: LedgerApplication, api_settings: Settings, database_url: str, company_id: str
) -> None:
    """The scheduler (one application) and the usage event (another) race for one hold, many
    times: exactly one of them closes each hold, and the usage is charged either way."""
    open_company(pg_ledger, company_id, included_quota="0", postpaid_limit="100")
    other = build_ledger(api_settings, database_url)
    rounds = 10
    try:
        for n in range(rounds):
            placed = pg_ledger.place_hold(
                company_id=company_id, waba_id=f"{company_id}-w1", category="marketing",
                units=2, reference=f"race-{n}", ttl_s=1, actor="s", idempotency_key=f"r{n}",
            )  # fmt: skip
            after_expiry = datetime.fromisoformat(placed["expires_at"]) + timedelta(seconds=1)
            usage = Usage("//wa", f"race-{n}", company_id, f"{company_id}-w1", "c",
                          "marketing", "delivered", 2)  # fmt: skip
            delay = n * 0.001  # the scheduler starts later each round: either may win

            def expire(at: datetime = after_expiry, delay: float = delay) -> object:
                time.sleep(delay)
                return pg_ledger.start_due_cycles([wallet_id(company_id)], now=at, actor="c")

            run_at_once(
                2, lambda i, usage=usage, expire=expire: expire() if i else other.apply_usage(usage)
            )
    finally:
        other.close()
    pg_ledger.evict([wallet_id(company_id)])
    events = list(pg_ledger.events.get(wallet_id(company_id)))
    closed = Counter(e.reference for e in events if isinstance(e, Wallet.HoldClosed))
    assert closed == {f"race-{n}": 1 for n in range(rounds)}
    outcomes = Counter(e.status for e in events if isinstance(e, Wallet.HoldClosed))
    assert set(outcomes) <= {"settled", "expired"}
    charged = [e for e in events if isinstance(e, Wallet.Debited) and e.kind == "usage"]
    assert len(charged) == rounds  # usage is a fact: charged whoever closed the hold
    wallet = pg_ledger.get_wallet(company_id)
    assert (wallet.held, wallet.balance) == (D(0), D(-10))
