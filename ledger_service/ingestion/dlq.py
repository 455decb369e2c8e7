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
