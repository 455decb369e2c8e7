"""Kafka ingestion against a real broker and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from decimal import Decimal

import pytest

from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.domain.wallet import Wallet
from ledger_service.ingestion.dlq import replay_dead_letters
from ledger_service.service.ledger import LedgerApplication
from tests.integration.ingestion_support import (
    ingestion_settings,
    new_topics,
    open_company,
    produce,
    read_all,
    running_consumer,
    usage_event,
    wait_for,
    wait_until_consumed,
    wait_until_counted,
)

pytestmark = pytest.mark.integration
D = Decimal


@pytest.fixture
def ledger(database_url: str) -> Iterator[LedgerApplication]:
    app = build_ledger(Settings(environment="test", db_pool_size=4), database_url)
    yield app
    app.close()


def debits(ledger: LedgerApplication, company: str) -> list[Wallet.Debited]:
    wallet = ledger.get_wallet(company)
    return [e for e in ledger.events.get(wallet.id) if isinstance(e, Wallet.Debited)]


async def test_the_same_event_published_twice_debits_once(
    ledger: LedgerApplication,
    database_url: str,
    kafka_bootstrap: str,
    company_id: str,
) -> None:
    topics = await new_topics(kafka_bootstrap)
    open_company(ledger, company_id, [f"{company_id}-w1"], prepaid="10")
    event = usage_event(company_id, f"{company_id}-w1", event_id="msg-dup", units=3)
    await produce(kafka_bootstrap, topics.usage, [event])
    settings = ingestion_settings(database_url, kafka_bootstrap, topics)
    async with running_consumer(settings) as running:
        await wait_until_consumed(ledger, topics.usage, 1)
        await produce(kafka_bootstrap, topics.usage, [event])  # the producer retries it
        await wait_until_counted(2, running)
        assert running.total("duplicates") == 1
    assert len(debits(ledger, company_id)) == 1
    assert ledger.get_wallet(company_id).prepaid == D("8.5")


async def test_failed_status_is_counted_not_debited(
    ledger: LedgerApplication,
    database_url: str,
    kafka_bootstrap: str,
    company_id: str,
) -> None:
    topics = await new_topics(kafka_bootstrap)
    open_company(ledger, company_id, [f"{company_id}-w1"], prepaid="10")
    await produce(
        kafka_bootstrap,
        topics.usage,
        [usage_event(company_id, f"{company_id}-w1", status="failed", units=4)],
    )
    async with running_consumer(ingestion_settings(database_url, kafka_bootstrap, topics)) as r:
        await wait_until_counted(1, r)
        assert r.total("failed_status") == 1
    wallet = ledger.get_wallet(company_id)
    assert debits(ledger, company_id) == []
    assert wallet.prepaid == D(10)
    failed = [e for e in ledger.events.get(wallet.id) if type(e).__name__ == "FailedUsageRecorded"]
    assert len(failed) == 1


async def test_poison_messages_are_dead_lettered_and_replayed_once_fixed(
    ledger: LedgerApplication,
    database_url: str,
    kafka_bootstrap: str,
    company_id: str,
) -> None:
    topics = await new_topics(kafka_bootstrap)
    sender, stranger = f"{company_id}-w1", f"{company_id}-w2"
    open_company(ledger, company_id, [sender], prepaid="100")
    wrong_price = usage_event(company_id, sender, unit_price="0.49")
    await produce(
        kafka_bootstrap,
        topics.usage,
        [
            usage_event(company_id, sender, units=2),
            (company_id.encode(), b"{not json"),
            usage_event(company_id, stranger, event_id="msg-from-stranger", units=10),
            (
                company_id.encode(),
                json.dumps(
                    {
                        "specversion": "1.0",
                        "type": "message.recalled",
                        "id": "x",
                        "source": "s",
                        "data": {},
                    }
                ).encode(),
            ),
            wrong_price,
            usage_event(company_id, sender, category="utility", units=5),
        ],
    )
    settings = ingestion_settings(database_url, kafka_bootstrap, topics)
    async with running_consumer(settings):
        await wait_until_consumed(ledger, topics.usage, 6)
    assert ledger.get_wallet(company_id).prepaid == D("98.5")  # 2 x 0.5 + 5 x 0.1

    dead = await read_all(kafka_bootstrap, topics.dlq, expected=4)
    codes = sorted(dict(r.headers)["ledger-error-code"].decode() for r in dead)
    assert codes == ["MALFORMED_JSON", "PRICE_MISMATCH", "UNKNOWN_SENDER", "UNKNOWN_TYPE"]
    malformed = next(r for r in dead if r.value == b"{not json")
    headers = dict(malformed.headers)
    assert headers["ledger-original-topic"].decode() == topics.usage
    assert int(headers["ledger-original-offset"]) == 1

    # Fix the cause (link the sender), replay only that code, twice: applied exactly once.
    ledger.link_sender(company_id=company_id, waba_id=stranger, actor="op", idempotency_key="fix")
    for _ in range(2):
        report = await replay_dead_letters(
            kafka_bootstrap, dlq_topic=topics.dlq, usage_topic=topics.usage, code="UNKNOWN_SENDER"
        )
        assert dict(report.republished) == {"UNKNOWN_SENDER": 1}
    async with running_consumer(settings) as running:
        await wait_until_counted(2, running)  # the two republished records (offsets 6, 7)
        assert running.total("applied") == 1
        assert running.total("duplicates") == 1
    assert ledger.get_wallet(company_id).prepaid == D("93.5")


async def test_concurrent_producers_for_senders_of_one_pool_sum_exactly(
    ledger: LedgerApplication,
    database_url: str,
    kafka_bootstrap: str,
    company_id: str,
) -> None:
    topics = await new_topics(kafka_bootstrap)
    senders = [f"{company_id}-w{i}" for i in range(3)]
    open_company(
        ledger,
        company_id,
        senders,
        included="100",
        prepaid="50",
        limit="25",
        rate_card={"marketing": "0.5"},
    )
    per_producer = 150  # 3 x 150 x 0.5 = 225 against 100 + 50 + 25: 50 overage

    async def producer(sender: str) -> None:
        await produce(
            kafka_bootstrap,
            topics.usage,
            [usage_event(company_id, sender) for _ in range(per_producer)],
        )

    settings = ingestion_settings(database_url, kafka_bootstrap, topics)
    async with running_consumer(settings):
        await asyncio.gather(*(producer(s) for s in senders))
        await wait_until_consumed(ledger, topics.usage, 3 * per_producer)
        # Offsets can run ahead of the records (a producer retry under load appends a
        # duplicate the ledger ignores), so wait for the debits themselves.
        await wait_for(lambda: len(debits(ledger, company_id)) >= 3 * per_producer)
    events = debits(ledger, company_id)
    assert len(events) == 3 * per_producer
    total = {
        k: sum((e.split[k] for e in events), D(0))
        for k in ("included", "prepaid", "postpaid", "overage")
    }
    assert total == {"included": D(100), "prepaid": D(50), "postpaid": D(25), "overage": D(50)}
    # Bucket order over the stream: once a debit reaches the next bucket, no earlier one is
    # drawn again.
    order = [
        max(
            (
                i
                for i, k in enumerate(("included", "prepaid", "postpaid", "overage"))
                if e.split[k] > 0
            ),
            default=0,
        )
        for e in events
    ]
    assert order == sorted(order)
    wallet = ledger.get_wallet(company_id)
    assert (wallet.balance, wallet.available) == (D(-75), D(-50))


async def test_keyless_records_of_one_company_across_partitions_apply_exactly(
    ledger: LedgerApplication,
    database_url: str,
    kafka_bootstrap: str,
    company_id: str,
) -> None:
    """Records without a key land on any partition, so batches applied at the same time can
    hold the same company: they wait for each other and every debit lands exactly once."""
    topics = await new_topics(kafka_bootstrap)
    senders = [f"{company_id}-w{i}" for i in range(3)]
    open_company(ledger, company_id, senders, included="100", prepaid="50", limit="25",
                 rate_card={"marketing": "0.5"})  # fmt: skip
    events = [usage_event(company_id, senders[i % 3])[1] for i in range(450)]
    settings = ingestion_settings(database_url, kafka_bootstrap, topics, ingestion_concurrency=4)
    async with running_consumer(settings) as run:
        await produce(kafka_bootstrap, topics.usage, [(None, value) for value in events])
        await wait_for(lambda: len(debits(ledger, company_id)) >= len(events))
    partitions = {partition for partition, _ in run.committed}
    assert len(partitions) > 1, "the keyless records should have spread over partitions"
    found = debits(ledger, company_id)
    assert len(found) == len(events)
    total = {
        k: sum((e.split[k] for e in found), D(0))
        for k in ("included", "prepaid", "postpaid", "overage")
    }
    assert total == {"included": D(100), "prepaid": D(50), "postpaid": D(25), "overage": D(50)}
    assert ledger.get_wallet(company_id).balance == D(-75)


async def test_two_consumers_in_one_group_while_partitions_rebalance(
    ledger: LedgerApplication,
    database_url: str,
    kafka_bootstrap: str,
) -> None:
    topics = await new_topics(kafka_bootstrap)
    companies = [f"rb-{topics.group}-{i}" for i in range(12)]
    for company in companies:
        open_company(ledger, company, [f"{company}-w"], prepaid="10000")
    rng = random.Random(7)
    events = [
        usage_event(c, f"{c}-w", units=rng.randint(1, 4))
        for c in (rng.choice(companies) for _ in range(3000))
    ]
    expected: dict[str, Decimal] = dict.fromkeys(companies, D(0))
    for key, value in events:
        expected[key.decode()] += D("0.5") * json.loads(value)["data"]["units"]
    settings = ingestion_settings(database_url, kafka_bootstrap, topics, batch_size_max=50)

    async with running_consumer(settings) as first:
        await produce(kafka_bootstrap, topics.usage, events[:1500])
        async with running_consumer(settings) as second:  # joins: partitions move
            await produce(kafka_bootstrap, topics.usage, events[1500:2500])
            await asyncio.sleep(0.5)
            first.stop.set()  # leaves mid-stream: partitions move again
            await produce(kafka_bootstrap, topics.usage, events[2500:])
            await wait_until_counted(len(events), first, second)
            applied = first.total("applied") + second.total("applied")
    assert applied == len(events)
    for company in companies:
        assert len(debits(ledger, company)) == sum(1 for k, _ in events if k.decode() == company)
        assert ledger.get_wallet(company).prepaid == D(10000) - expected[company]
