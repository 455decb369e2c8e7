"""Legacy pools into shared pools on a real PostgreSQL: `ledger pools migrate|coverage` as a
script runs them, the operators' HTTP endpoints, usage through the Kafka consumer during the
migration applied once to whichever pool owned its sender, and replay and verify after."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from ledger_service.audit.verify import verify
from ledger_service.domain.usage import Usage
from ledger_service.domain.wallet import Wallet
from ledger_service.service.ledger import LedgerApplication
from ledger_service.service.pools import migrate_pools
from tests.conftest import Tokens
from tests.integration.ingestion_support import (
    ingestion_settings,
    new_topics,
    produce,
    running_consumer,
    usage_event,
    wait_until_counted,
)
from tests.integration.test_audit import ledger
from tests.integration.test_audit_cli import run_ledger

pytestmark = pytest.mark.integration
__all__ = ["ledger"]  # the fixture, shared with test_audit
D = Decimal


def legacy(ledger: LedgerApplication, company: str, sender: str, prepaid: str) -> None:
    ledger.open_wallet(
        company_id=company, currency="USD", mode="per_sender", pool_sender_id=sender,
        postpaid_limit="10", included_quota="2", rate_card={"marketing": "1"}, actor="op",
        idempotency_key=f"open-{sender}",
    )  # fmt: skip
    if prepaid != "0":
        ledger.credit_wallet(
            company_id=company, pool_sender_id=sender, amount=prepaid, kind="grant",
            reference="fund", actor="op", idempotency_key=f"fund-{sender}",
        )  # fmt: skip


def message(company: str, sender: str, event_id: str, units: int = 1) -> Usage:
    return Usage("//wa", event_id, company, sender, "c", "marketing", "delivered", units)


def test_the_cli_migrates_reports_coverage_and_verify_agrees(
    ledger: LedgerApplication, fresh_database_url: str
) -> None:
    url = fresh_database_url
    legacy(ledger, "acme", "w1", "30")
    legacy(ledger, "acme", "w2", "0")
    legacy(ledger, "beta", "b1", "5")
    ledger.apply_usage(message("acme", "w2", "m1", units=7))  # 2 included, 5 on credit
    before = sum((ledger.get_wallet("acme", s).balance for s in ("w1", "w2")), D(0))

    listed = run_ledger(url, "pools", "coverage")
    assert listed.returncode == 1, listed.stderr
    assert "3 per-sender pools in use" in listed.stdout
    head = ledger.recorder.max_notification_id()
    dry = run_ledger(url, "pools", "migrate", "--company", "acme", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would move 27" in dry.stdout  # w1: 2 included + 30 prepaid; w2: 5 of debt
    assert ledger.recorder.max_notification_id() == head, "a dry run writes nothing"
    done = run_ledger(url, "pools", "migrate", "--company", "acme")
    assert done.returncode == 0, done.stderr
    assert "shared pool opened; moved 27" in done.stdout
    written = ledger.recorder.max_notification_id()
    again = run_ledger(url, "pools", "migrate", "--company", "acme")
    assert (again.returncode, "moved 27" in again.stdout) == (0, True), "replayed, not redone"
    assert ledger.recorder.max_notification_id() == written

    shared = ledger.get_wallet("acme")
    assert (shared.balance, shared.senders) == (before, {"w1", "w2"})
    ledger.apply_usage(message("acme", "w1", "m2"))  # the shared pool's now
    assert ledger.get_wallet("acme").balance == before - 1
    left = run_ledger(url, "pools", "coverage")
    assert (left.returncode, "beta\tb1" in left.stdout, "acme" in left.stdout) == (1, True, False)
    assert run_ledger(url, "pools", "migrate", "--company", "beta").returncode == 0
    covered = run_ledger(url, "pools", "coverage")
    assert covered.returncode == 0, covered.stdout
    assert "0 per-sender pools in use" in covered.stdout
    report = verify(ledger)
    assert report.ok, report.problems
    replayed = run_ledger(url, "replay", "--all")
    assert replayed.returncode == 0, replayed.stderr


async def test_operators_migrate_over_http(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    legacy(pg_ledger, company_id, f"{company_id}-a", "12")
    legacy(pg_ledger, company_id, f"{company_id}-b", "3")
    position = pg_ledger.recorder.max_notification_id()
    path = f"/v1/companies/{company_id}/pools/migrate"
    operator = tokens.operator()
    assert (await api.post(path, json={}, headers=tokens.tenant(company_id))).status_code == 403
    plan = await api.post(path, json={"dry_run": True}, params={"min_position": position},
                          headers=operator)  # fmt: skip
    assert plan.status_code == 200, plan.text
    assert (plan.json()["shared_wallet"], plan.json()["moved"]) == ("to_open", "19")
    done = await api.post(path, json={}, params={"min_position": position}, headers=operator)
    assert [p["status"] for p in done.json()["pools"]] == ["merged", "merged"]
    assert pg_ledger.get_wallet(company_id).balance == D(19)
    coverage = await api.get(
        "/v1/admin/pools/coverage",
        params={"min_position": pg_ledger.recorder.max_notification_id(), "limit": 1000},
        headers=operator,
    )
    assert company_id not in {r["company_id"] for r in coverage.json()["remaining"]}
    unknown = await api.post(f"/v1/companies/{company_id}-x/pools/migrate", json={},
                             headers=operator)  # fmt: skip
    assert unknown.status_code == 404


async def test_usage_through_the_consumer_during_the_migration_is_applied_once(
    pg_ledger: LedgerApplication, database_url: str, kafka_bootstrap: str, company_id: str
) -> None:
    """300 messages of two senders stream through the consumer while their pools merge: each
    is charged once, to the pool its sender was on, and the company's money adds up."""
    senders = [f"{company_id}-a", f"{company_id}-b"]
    for sender in senders:
        legacy(pg_ledger, company_id, sender, "500")
    before = sum((pg_ledger.get_wallet(company_id, s).balance for s in senders), D(0))
    topics = await new_topics(kafka_bootstrap)
    events = [usage_event(company_id, senders[i % 2], event_id=f"m{i}") for i in range(300)]
    settings = ingestion_settings(database_url, kafka_bootstrap, topics)
    async with running_consumer(settings) as running:
        await produce(kafka_bootstrap, topics.usage, events[:100])
        producing = asyncio.create_task(produce(kafka_bootstrap, topics.usage, events[100:]))
        await asyncio.sleep(0.2)  # some applied to the legacy pools, the rest racing the merge
        report = await asyncio.to_thread(migrate_pools, pg_ledger, company_id, senders, actor="ops")
        await producing
        await wait_until_counted(300, running)
        assert running.total("applied") == 300
        assert running.total("dead_lettered") == 0
    assert [p["status"] for p in report.pools] == ["merged", "merged"]
    pools = [pg_ledger.get_wallet(company_id, s) for s in senders]
    pg_ledger.evict([w.id for w in pools])
    pools = [pg_ledger.get_wallet(company_id, s) for s in senders]
    shared = pg_ledger.get_wallet(company_id)
    assert [w.balance for w in pools] == [0, 0], "emptied, and nothing charged after"
    assert shared.balance == before - 300, "every message charged once, nothing lost"
    charged = [
        e.reference
        for w in [*pools, shared]
        for e in pg_ledger.events.get(w.id)  # type: ignore[attr-defined]
        if isinstance(e, Wallet.Debited) and e.kind == "usage"
    ]
    assert len(charged) == len(set(charged)) == 300
    report_ok = verify(pg_ledger)
    assert report_ok.ok, report_ok.problems


def usage_references(ledger: LedgerApplication, wallet: Wallet) -> list[str]:
    return [
        e.reference
        for e in ledger.events.get(wallet.id)  # type: ignore[attr-defined]
        if isinstance(e, Wallet.Debited) and e.kind == "usage"
    ]
