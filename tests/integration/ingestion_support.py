"""Helpers for ingestion tests: topics, wallets, events, and a consumer running in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ledger_service.bootstrap import Container, bootstrap, build_consumer
from ledger_service.config import Settings
from ledger_service.ingestion.batch import BatchOutcome
from ledger_service.ingestion.consumer import UsageConsumer
from ledger_service.ingestion.records import Consumed, position_name
from ledger_service.ingestion.topics import ensure_topics
from ledger_service.service.ledger import LedgerApplication

PARTITIONS = 3
BROKER_CALL_TIMEOUT_S = 90
"""Bound on a helper's whole conversation with the broker. Twice a full run hung in a test's
Kafka calls (the event loop idle, no test timeout): a bounded wait fails that test with a
traceback naming the call instead of holding CI until its 90-minute limit."""


@dataclass
class Topics:
    usage: str
    dlq: str
    group: str


async def new_topics(bootstrap_address: str) -> Topics:
    suffix = uuid.uuid4().hex[:8]
    topics = Topics(f"usage-{suffix}", f"dlq-{suffix}", f"group-{suffix}")
    created = ensure_topics(bootstrap_address, {topics.usage: PARTITIONS, topics.dlq: 1})
    await asyncio.wait_for(created, BROKER_CALL_TIMEOUT_S)
    return topics


def ingestion_settings(database_url: str, kafka: str, topics: Topics, **extra: Any) -> Settings:
    options: dict[str, Any] = {
        "poll_timeout_ms": 50,
        "batch_size_max": 500,
        "db_pool_size": 4,
        "unavailable_backoff_max_s": 0.5,
        "ingestion_stall_s": 1.0,
        "db_connect_timeout_s": 1,
    } | extra
    return Settings(
        environment="test",
        database_url=database_url,
        kafka_bootstrap=kafka,
        usage_topic=topics.usage,
        dlq_topic=topics.dlq,
        consumer_group=topics.group,
        **options,
    )


def open_company(
    ledger: LedgerApplication,
    company: str,
    senders: Sequence[str],
    *,
    included: str = "0",
    prepaid: str = "0",
    limit: str = "1000",
    rate_card: dict[str, str] | None = None,
) -> None:
    ledger.open_wallet(
        company_id=company,
        currency="USD",
        postpaid_limit=limit,
        included_quota=included,
        rate_card=rate_card or {"marketing": "0.5", "utility": "0.1"},
        actor="test",
        idempotency_key="open",
    )
    for sender in senders:
        ledger.link_sender(
            company_id=company, waba_id=sender, actor="test", idempotency_key=f"link-{sender}"
        )
    if prepaid != "0":
        ledger.credit_wallet(
            company_id=company,
            amount=prepaid,
            kind="grant",
            bucket="prepaid",
            reference="test",
            actor="test",
            idempotency_key="prepaid",
        )


def usage_event(
    company: str,
    sender: str,
    *,
    event_id: str | None = None,
    category: str = "marketing",
    status: str = "delivered",
    units: int = 1,
    **data: Any,
) -> tuple[bytes, bytes]:
    event = {
        "specversion": "1.0",
        "id": event_id or f"msg-{uuid.uuid4().hex}",
        "source": "//messaging/test",
        "type": "message.sent",
        "time": "2026-11-22T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {
            "company_id": company,
            "waba_id": sender,
            "conversation_id": "conv-1",
            "category": category,
            "status": status,
            "units": units,
            **data,
        },
    }
    return company.encode(), json.dumps(event).encode()


async def produce(kafka: str, topic: str, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
    await asyncio.wait_for(_produce(kafka, topic, messages), BROKER_CALL_TIMEOUT_S)


async def _produce(kafka: str, topic: str, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, enable_idempotence=False, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@dataclass
class Running:
    container: Container
    consumer: UsageConsumer
    ingestion_ledger: LedgerApplication
    outcomes: list[BatchOutcome] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    committed: set[tuple[int, int]] = field(default_factory=set)
    """(partition, offset) of every record in a batch whose outcome is in ``outcomes``."""

    def total(self, attribute: str) -> int:
        return sum(getattr(o, attribute) for o in self.outcomes)


@contextlib.asynccontextmanager
async def running_consumer(settings: Settings) -> AsyncIterator[Running]:
    container = bootstrap(settings, with_broker=True)
    outcomes: list[BatchOutcome] = []
    committed: set[tuple[int, int]] = set()

    def on_committed(records: Sequence[Consumed], outcome: BatchOutcome) -> None:
        outcomes.append(outcome)
        committed.update((record.partition, record.offset) for record in records)

    consumer, ingestion_ledger = build_consumer(container, on_committed=on_committed)
    running = Running(container, consumer, ingestion_ledger, outcomes, committed=committed)
    task = asyncio.create_task(consumer.run(running.stop))
    try:
        yield running
    finally:
        running.stop.set()
        await asyncio.wait_for(task, timeout=30)
        container.close()


def consumed_count(ledger: LedgerApplication, topic: str) -> int:
    """Records consumed so far: the sum of the partitions' recorded next offsets."""
    return sum(ledger.consumer_position(position_name(topic, p)) or 0 for p in range(PARTITIONS))


async def wait_until_consumed(
    ledger: LedgerApplication, topic: str, produced: int, timeout_s: float = 60
) -> None:
    """Until the recorded positions account for every record produced to ``topic``.
    (Offsets are counted, not read from the broker: Tansu under-reports end offsets.)"""
    await wait_for(lambda: consumed_count(ledger, topic) >= produced, timeout_s)


async def wait_until_counted(produced: int, *runs: Running, timeout_s: float = 60) -> None:
    """Until the outcomes of ``runs`` account for ``produced`` records. Use this, not
    ``wait_until_consumed``, before reading ``Running.total``: a batch's position is committed a
    moment before its outcome is handed back, and a loaded host stretches that moment."""

    def counted() -> bool:
        return len(set().union(*(run.committed for run in runs))) >= produced

    await wait_for(counted, timeout_s)


async def wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.1)


async def read_all(kafka: str, topic: str, expected: int, timeout_s: float = 20) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka, group_id=None, auto_offset_reset="earliest"
    )
    await asyncio.wait_for(consumer.start(), BROKER_CALL_TIMEOUT_S)
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()
