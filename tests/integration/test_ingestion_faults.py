"""Ingestion under faults: a consumer process killed with SIGKILL (also between holds and the
usage events that settle them), and a database outage."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.domain.holds import HoldStatus
from ledger_service.domain.ids import wallet_id
from ledger_service.domain.wallet import Wallet
from ledger_service.service.hold_batcher import HoldBatcher
from ledger_service.service.holds import PlaceHold
from ledger_service.service.ledger import LedgerApplication
from tests.integration.ingestion_support import (
    Topics,
    consumed_count,
    ingestion_settings,
    new_topics,
    open_company,
    produce,
    read_all,
    running_consumer,
    usage_event,
    wait_for,
    wait_until_consumed,
)

pytestmark = pytest.mark.integration
D = Decimal
LEDGER = str(Path(sys.executable).parent / "ledger")
PRICES = {"marketing": D("0.5"), "utility": D("0.1")}


@pytest.fixture
def ledger(database_url: str) -> Iterator[LedgerApplication]:
    app = build_ledger(Settings(environment="test", db_pool_size=4), database_url)
    yield app
    app.close()


def workload(
    companies: list[str], count: int, duplicates_pct: int, seed: int
) -> tuple[list[tuple[bytes, bytes]], dict[str, Decimal], int]:
    """Events (with verbatim duplicates), the expected charge per company, unique count."""
    rng = random.Random(seed)
    events: list[tuple[bytes, bytes]] = []
    expected = dict.fromkeys(companies, D(0))
    unique = 0
    for _ in range(count):
        if events and rng.randrange(100) < duplicates_pct:
            events.append(rng.choice(events))
            continue
        company = rng.choice(companies)
        category = rng.choice(list(PRICES))
        units = rng.randint(1, 3)
        events.append(
            usage_event(company, f"{company}-w{rng.randrange(2)}", category=category, units=units)
        )
        expected[company] += PRICES[category] * units
        unique += 1
    return events, expected, unique


def consume_process(settings_env: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")} | settings_env
    return subprocess.Popen(
        [LEDGER, "consume"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def consume_killed_then_restarted(
    ledger: LedgerApplication,
    database_url: str,
    kafka_bootstrap: str,
    topics: Topics,
    *,
    produced: int,
    kill_after: int,
    batch_size: int,
) -> None:
    """`ledger consume`, SIGKILLed once it has consumed ``kill_after`` of the ``produced``
    records; then another one, which consumes the rest and stops cleanly on SIGTERM."""
    env = {
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "LEDGER_USAGE_TOPIC": topics.usage,
        "LEDGER_DLQ_TOPIC": topics.dlq,
        "LEDGER_CONSUMER_GROUP": topics.group,
        "LEDGER_BATCH_SIZE_MAX": str(batch_size),
        "LEDGER_DB_POOL_SIZE": "2",
    }
    first = consume_process(env)
    try:
        await wait_for(lambda: consumed_count(ledger, topics.usage) >= kill_after, 90)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    killed_at = consumed_count(ledger, topics.usage)
    assert killed_at < produced, "the consumer finished before it could be killed"
    second = consume_process(env)
    try:
        await wait_until_consumed(ledger, topics.usage, produced, 120)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0


async def test_consumer_killed_mid_batch_and_restarted_matches_reference(
    ledger: LedgerApplication,
    database_url: str,
    kafka_bootstrap: str,
) -> None:
    topics = await new_topics(kafka_bootstrap)
    companies = [f"kill-{topics.group}-{i}" for i in range(10)]
    for company in companies:
        open_company(ledger, company, [f"{company}-w0", f"{company}-w1"], prepaid="100000")
    events, expected, unique = workload(companies, 12_000, duplicates_pct=10, seed=11)
    await produce(kafka_bootstrap, topics.usage, events)
    await consume_killed_then_restarted(
        ledger, database_url, kafka_bootstrap, topics,
        produced=len(events), kill_after=1500, batch_size=100,
    )  # fmt: skip

    debited = 0
    for company in companies:
        wallet = ledger.get_wallet(company)
        debited += sum(1 for e in ledger.events.get(wallet.id) if isinstance(e, Wallet.Debited))
        assert wallet.prepaid == D(100000) - expected[company], company
    assert debited == unique
    assert await read_all(kafka_bootstrap, topics.dlq, expected=1, timeout_s=2) == []


async def test_database_outage_pauses_without_dead_lettering_or_skipping(
    ledger: LedgerApplication,
    database_url: str,
    admin_database_url: str,
    kafka_bootstrap: str,
    company_id: str,
) -> None:
    topics = await new_topics(kafka_bootstrap)
    open_company(ledger, company_id, [f"{company_id}-w"], prepaid="100")
    database = conninfo_to_dict(database_url)["dbname"]
    settings = ingestion_settings(database_url, kafka_bootstrap, topics)
    async with running_consumer(settings) as running:
        await produce(kafka_bootstrap, topics.usage, [usage_event(company_id, f"{company_id}-w")])
        await wait_until_consumed(ledger, topics.usage, 1)
        with psycopg.connect(admin_database_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )
            try:
                await produce(
                    kafka_bootstrap,
                    topics.usage,
                    [usage_event(company_id, f"{company_id}-w") for _ in range(4)],
                )
                await wait_for(lambda: not running.consumer.ready, 30)
                await asyncio.sleep(1.0)  # keep it down a little longer: still nothing lost
            finally:
                admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await wait_until_consumed(ledger, topics.usage, 5, 60)
        assert running.consumer.ready
    assert ledger.get_wallet(company_id).prepaid == D("97.5")
    assert await read_all(kafka_bootstrap, topics.dlq, expected=1, timeout_s=2) == []


def hold(company_id: str, sender: str, i: int) -> PlaceHold:
    return PlaceHold(
        company_id=company_id, waba_id=sender, category="marketing", units=1,
        reference=f"{company_id}-m{i}", actor="sender", idempotency_key=str(i),
    )  # fmt: skip


async def test_consumer_killed_between_holds_and_their_usage_settles_each_hold_once(
    ledger: LedgerApplication, database_url: str, kafka_bootstrap: str, company_id: str
) -> None:
    """Holds placed, then their usage events published; the consumer is SIGKILLed part-way
    and restarted: every hold is settled exactly once and each message charged once."""
    topics = await new_topics(kafka_bootstrap)
    sender = f"{company_id}-w0"
    open_company(ledger, company_id, [sender], prepaid="0", limit="100000")
    count = 2000
    batcher = HoldBatcher(ledger)
    batcher.start()
    try:
        futures = [batcher.submit(hold(company_id, sender, i)) for i in range(count)]
        for future in futures:
            future.result(timeout=60)
    finally:
        batcher.close()
    events = [usage_event(company_id, sender, event_id=f"{company_id}-m{i}") for i in range(count)]
    await produce(kafka_bootstrap, topics.usage, events)
    await consume_killed_then_restarted(
        ledger, database_url, kafka_bootstrap, topics,
        produced=count, kill_after=300, batch_size=50,
    )  # fmt: skip

    ledger.evict([wallet_id(company_id)])
    wallet = ledger.get_wallet(company_id)
    history = list(ledger.events.get(wallet.id))
    closed = [e for e in history if isinstance(e, Wallet.HoldClosed)]
    assert Counter(e.status for e in closed) == {HoldStatus.SETTLED: count}
    assert len({e.hold_id for e in closed}) == count
    assert sum(isinstance(e, Wallet.Debited) for e in history) == count
    assert (wallet.holds, wallet.held, wallet.postpaid_used) == ({}, D(0), D(count) * D("0.5"))
