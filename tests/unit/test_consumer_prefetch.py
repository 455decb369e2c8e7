"""The consumer fetches one poll ahead, and never applies a poll fetched before a rebalance.

A scripted stand-in for the broker client; the consumer's own loop, decoding thread and
rebalance listener are the real ones (the broker itself is exercised in the integration tests).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from aiokafka import ConsumerRecord, TopicPartition

from ledger_service.ingestion.batch import UsageIngestor
from ledger_service.ingestion.consumer import UsageConsumer, _Rebalance
from ledger_service.ingestion.records import Consumed
from ledger_service.service.usage import BatchOutcome

PARTITION = TopicPartition("t", 0)


def records(*offsets: int) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
    return {
        PARTITION: [
            ConsumerRecord("t", 0, offset, 0, 0, b"k", b"{}", None, 1, 2, ()) for offset in offsets
        ]
    }


class ScriptedBroker:
    """Answers each ``getmany`` with the next scripted poll (then nothing); ``on_poll`` runs
    just after a poll is handed out, with its number (1-based)."""

    def __init__(self, polls: Sequence[dict[TopicPartition, Any]], on_poll: Any = None) -> None:
        self.polls = list(polls)
        self.handed_out = 0
        self.on_poll = on_poll
        self.sought: list[int] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        if not self.polls:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        self.handed_out += 1
        if self.on_poll is not None:
            self.on_poll(self.handed_out)
        return self.polls.pop(0)

    def assignment(self) -> set[TopicPartition]:
        return {PARTITION}

    def highwater(self, partition: TopicPartition) -> None:
        return None

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.sought.append(offset)


class RecordingIngestor:
    """Records the offsets of each batch applied; ``hold`` keeps the first batch in flight
    until it is set."""

    def __init__(self) -> None:
        self.applied: list[list[int]] = []
        self.hold = threading.Event()
        self.first_batch_saw_polls = 0
        self.broker: ScriptedBroker | None = None

    @staticmethod
    def decode(batch: Sequence[Consumed]) -> list[Any]:
        return [(record.offset, None) for record in batch]

    def apply_batch(self, batch: Sequence[Consumed], decoded: Any = None) -> BatchOutcome:
        if not self.applied:
            self.hold.wait(timeout=5)
            assert self.broker is not None
            self.first_batch_saw_polls = self.broker.handed_out
        self.applied.append([record.offset for record in batch])
        return BatchOutcome()

    def next_offset(self, topic: str, partition: int) -> int:
        return 0


def consumer(ingestor: RecordingIngestor, broker: ScriptedBroker) -> UsageConsumer:
    owner = UsageConsumer(
        cast(UsageIngestor, ingestor),
        bootstrap="127.0.0.1:1",
        topic="t",
        dlq_topic="d",
        group_id="g",
        poll_timeout_ms=10,
    )
    owner._consumer = cast(Any, broker)
    ingestor.broker = broker
    return owner


async def consume(owner: UsageConsumer, ingestor: RecordingIngestor, batches: int) -> None:
    owner._loop = asyncio.get_running_loop()
    owner._decoder = ThreadPoolExecutor(max_workers=1)
    stop = asyncio.Event()
    task = asyncio.create_task(owner._consume_until(stop))
    for _ in range(300):
        if len(ingestor.applied) >= batches:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # anything applied late would show now
    stop.set()
    await task
    owner._decoder.shutdown()


async def test_the_next_poll_is_fetched_while_a_batch_is_written() -> None:
    ingestor = RecordingIngestor()
    broker = ScriptedBroker(
        [records(0, 1), records(2, 3)], on_poll=lambda n: n == 2 and ingestor.hold.set()
    )
    await consume(consumer(ingestor, broker), ingestor, batches=2)
    assert ingestor.first_batch_saw_polls == 2  # the second poll was in before the first ended
    assert ingestor.applied == [[0, 1], [2, 3]]


async def test_a_poll_fetched_before_a_rebalance_is_dropped() -> None:
    ingestor = RecordingIngestor()
    rebalances: list[asyncio.Task[None]] = []
    owner: UsageConsumer

    def rebalance_after_second_poll(poll: int) -> None:
        if poll != 2:
            return

        async def rebalance() -> None:
            listener = _Rebalance(owner)
            revoking = asyncio.create_task(listener.on_partitions_revoked({PARTITION}))
            await asyncio.sleep(0)
            ingestor.hold.set()  # the batch in flight ends; the revocation waited for it
            await revoking
            await listener.on_partitions_assigned({PARTITION})

        rebalances.append(asyncio.get_running_loop().create_task(rebalance()))

    # Poll 2 was fetched ahead before the rebalance; after it the partition is sought back and
    # the same records come again (poll 3).
    broker = ScriptedBroker(
        [records(0, 1), records(2, 3), records(2, 3, 4)], on_poll=rebalance_after_second_poll
    )
    owner = consumer(ingestor, broker)
    await consume(owner, ingestor, batches=2)
    await asyncio.gather(*rebalances)
    assert broker.sought == [0]
    assert ingestor.applied == [[0, 1], [2, 3, 4]]
