"""`ledger dlq replay`: re-publish dead letters to the usage topic once their cause is fixed.

Reads the dead-letter topic from its beginning up to its end as of the start of the replay
(nothing is committed: the tool is stateless and safe to run again), and re-publishes the
original bytes of every matching dead letter. Usage keys make a replay apply each event at most
once, however often it is replayed; one that is still bad is dead-lettered again.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from ledger_service.ingestion.consumer import LEDGER_HEADER_PREFIX

log = structlog.get_logger(__name__)

POLL_TIMEOUT_MS = 500
IDLE_POLLS_MAX = 20


@dataclass
class ReplayReport:
    republished: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


async def replay_dead_letters(
    bootstrap: str,
    *,
    dlq_topic: str,
    usage_topic: str,
    code: str | None = None,
    limit: int | None = None,
) -> ReplayReport:
    report = ReplayReport()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=False
    )
    await consumer.start()
    await producer.start()
    try:
        partitions = [
            TopicPartition(dlq_topic, p) for p in sorted(await _partitions(consumer, dlq_topic))
        ]
        if not partitions:
            return report
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        idle = 0
        while await _behind(consumer, ends):
            batches = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS)
            idle = 0 if batches else idle + 1
            if idle > IDLE_POLLS_MAX:
                break
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    if limit is not None and sum(report.republished.values()) >= limit:
                        return report
                    await _replay_one(record, producer, usage_topic, code, report)
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()
    log.info("dlq_replayed", republished=dict(report.republished), skipped=dict(report.skipped))
    return report


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(20):
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return set(partitions)
        await consumer.topics()  # refreshes metadata
        await asyncio.sleep(0.1)
    return set()


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


async def _replay_one(
    record: ConsumerRecord[bytes, bytes],
    producer: AIOKafkaProducer,
    usage_topic: str,
    code: str | None,
    report: ReplayReport,
) -> None:
    headers = list(record.headers or ())
    record_code = dict(headers).get("ledger-error-code", b"UNKNOWN").decode()
    if code is not None and record_code != code:
        report.skipped[record_code] += 1
        return
    kept = [(k, v) for k, v in headers if not k.startswith(LEDGER_HEADER_PREFIX)]
    origin = f"{record.topic}:{record.partition}:{record.offset}"
    kept.append(("ledger-replayed-from", origin.encode()))
    await producer.send(
        usage_topic, value=record.value, key=_key_of(record.value, record.key), headers=kept
    )
    report.republished[record_code] += 1


def _key_of(value: bytes | None, original: bytes | None) -> bytes | None:
    """The company id when the value says it (that is what the key must be), else as it was."""
    try:
        company = json.loads(value or b"")["data"]["company_id"]
    except (ValueError, KeyError, TypeError):
        return original
    return company.encode() if isinstance(company, str) else original


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """One dead letter as an operator reads it: where it is, why, and whose it was."""

    partition: int
    offset: int
    code: str
    message: str
    company_id: str | None
    event_id: str | None
    timestamp_ms: int


@dataclass(frozen=True)
class DeadLetterDesk:
    """The console's view of the dead-letter topic: the newest letters, and replaying one or
    every letter of a code. Every call opens its own short-lived clients (an operator's page,
    not a hot path) and is bounded by ``timeout_s``."""

    bootstrap: str
    dlq_topic: str
    usage_topic: str
    timeout_s: float = 10.0

    async def newest(self, *, code: str | None, limit: int) -> list[DeadLetterView]:
        """Up to ``limit`` letters per partition from each partition's end, newest first."""
        return await asyncio.wait_for(self._newest(code, limit), self.timeout_s)

    async def replay_one(self, partition: int, offset: int) -> str:
        """Re-publish the letter at (partition, offset); its code, or raise ``LookupError``."""
        return await asyncio.wait_for(self._republish_at(partition, offset), self.timeout_s)

    async def replay_code(self, code: str) -> int:
        report = await asyncio.wait_for(
            replay_dead_letters(
                self.bootstrap, dlq_topic=self.dlq_topic, usage_topic=self.usage_topic, code=code
            ),
            self.timeout_s * 6,
        )
        return report.republished[code]

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest",
        )  # fmt: skip

    async def _newest(self, code: str | None, limit: int) -> list[DeadLetterView]:
        consumer = self._consumer()
        await consumer.start()
        letters: list[DeadLetterView] = []
        try:
            partitions = [
                TopicPartition(self.dlq_topic, p)
                for p in sorted(await _partitions(consumer, self.dlq_topic))
            ]
            if not partitions:
                return []
            consumer.assign(partitions)
            starts = await consumer.beginning_offsets(partitions)
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                consumer.seek(tp, max(starts[tp], ends[tp] - limit))
            async for record in _records_until(consumer, ends):
                letter = _view(record)
                if code is None or letter.code == code:
                    letters.append(letter)
        finally:
            await consumer.stop()
        letters.sort(key=lambda letter: (letter.timestamp_ms, letter.offset), reverse=True)
        return letters[:limit]

    async def _republish_at(self, partition: int, offset: int) -> str:
        consumer = self._consumer()
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False
        )
        await consumer.start()
        await producer.start()
        try:
            tp = TopicPartition(self.dlq_topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, offset)
            batch = await consumer.getmany(tp, timeout_ms=POLL_TIMEOUT_MS * 4, max_records=1)
            record = next(iter(batch.get(tp, [])), None)
            if record is None or record.offset != offset:
                raise LookupError(f"no dead letter at partition {partition}, offset {offset}")
            report = ReplayReport()
            await _replay_one(record, producer, self.usage_topic, None, report)
            await producer.flush()
        finally:
            await consumer.stop()
            await producer.stop()
        log.info("dlq_replayed_one", partition=partition, offset=offset)
        return next(iter(report.republished))


async def _records_until(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    idle = 0
    while await _behind(consumer, ends) and idle <= IDLE_POLLS_MAX:
        batches = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS)
        idle = 0 if batches else idle + 1
        for tp, records in batches.items():
            for record in records:
                if record.offset < ends[tp]:
                    yield record


def _view(record: ConsumerRecord[bytes, bytes]) -> DeadLetterView:
    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
    try:
        event = json.loads(record.value or b"")
        event_id = event.get("id") if isinstance(event, dict) else None
        data = event.get("data") if isinstance(event, dict) else None
        company = data.get("company_id") if isinstance(data, dict) else None
    except ValueError:
        event_id, company = None, None
    return DeadLetterView(
        partition=record.partition,
        offset=record.offset,
        code=headers.get("ledger-error-code", "UNKNOWN"),
        message=headers.get("ledger-error-message", ""),
        company_id=company if isinstance(company, str) else None,
        event_id=event_id if isinstance(event_id, str) else None,
        timestamp_ms=record.timestamp,
    )
