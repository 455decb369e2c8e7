"""The consumer fetches one poll ahead, and never applies a poll fetched before a rebalance.

A scripted stand-in for the broker client; the consumer's own loop, decoding thread and
rebalance listener are the real ones (the broker itself is exercised in the integration tests).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from ledger_service.ingestion.consumer import UsageConsumer, _Rebalance
from ledger_service.ingestion.records import Consumed
from ledger_service.service.usage import BatchOutcome
from tests.unit.scripted_consumer import scripted_consumer

PARTITION = TopicPartition("t", 0)


def records(*offsets: int) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
    return {
        PARTITION: [
            ConsumerRecord("t", 0, offset, 0, 0, b"k", b"{}", None, 1, 2, ()) for offset in offsets
        ]
    }


class FakeBroker:
    """One partition's log: ``getmany`` hands out what has arrived past the position, waiting
    up to its timeout for something; ``on_poll`` runs as a non-empty poll is handed out, with
    its number (1-based)."""

    def __init__(self, arrived: Sequence[int] = (), on_poll: Any = None) -> None:
        self.log = list(arrived)
        self.position = 0
        self.handed_out = 0
        self.on_poll = on_poll
        self.sought: list[int] = []
        self.changed = asyncio.Condition()

    def arrive(self, *offsets: int) -> None:
        self.log.extend(offsets)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        async with self.changed:
            if self.position >= len(self.log):
                try:
                    await asyncio.wait_for(
                        self.changed.wait_for(lambda: self.position < len(self.log)),
                        timeout_ms / 1000,
                    )
                except TimeoutError:
                    return {}
            chunk = self.log[self.position : self.position + max_records]
            self.position += len(chunk)
        self.handed_out += 1
        if self.on_poll is not None:
            self.on_poll(self.handed_out)
        return records(*chunk)

    def assignment(self) -> set[TopicPartition]:
        return {PARTITION}

    def highwater(self, partition: TopicPartition) -> None:
        return None

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.sought.append(offset)
        self.position = offset
        asyncio.get_running_loop().create_task(self._notify())


class RecordingIngestor:
    """Records the offsets of each batch applied. The first batch stays in flight until
    ``hold`` is set, and ``while_first_is_written`` runs meanwhile on the event loop."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.applied: list[list[int]] = []
        self.hold = threading.Event()
        self.while_first_is_written: Any = None
        self.polls_before_first_ended = 0
        self.loop = asyncio.get_running_loop()

    @staticmethod
    def decode(batch: Sequence[Consumed]) -> list[Any]:
        return [(record.offset, None) for record in batch]

    def apply_batch(self, batch: Sequence[Consumed], decoded: Any = None) -> BatchOutcome:
        assert [offset for offset, _ in decoded] == [record.offset for record in batch]
        if not self.applied:
            if self.while_first_is_written is not None:
                self.loop.call_soon_threadsafe(self.while_first_is_written)
            assert self.hold.wait(timeout=5)
            self.polls_before_first_ended = self.broker.handed_out
        self.applied.append([record.offset for record in batch])
        return BatchOutcome()

    def next_offset(self, topic: str, partition: int) -> int | None:
        """The recorded position: past the last batch applied."""
        return self.applied[-1][-1] + 1 if self.applied else None


def consumer(ingestor: RecordingIngestor, batch_size_max: int) -> UsageConsumer:
    return scripted_consumer(
        ingestor, ingestor.broker, batch_size_max=batch_size_max, poll_timeout_ms=10
    )


async def consume(owner: UsageConsumer, ingestor: RecordingIngestor, offsets: int) -> None:
    """Run the consumer until ``offsets`` records are applied, and a moment longer."""
    owner._loop = asyncio.get_running_loop()
    owner._decoder = ThreadPoolExecutor(max_workers=1)
    stop = asyncio.Event()
    task = asyncio.create_task(owner._consume_until(stop))
    for _ in range(300):
        if sum(map(len, ingestor.applied)) >= offsets:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # anything applied late would show now
    stop.set()
    await task
    owner._decoder.shutdown()


async def test_the_next_poll_is_fetched_while_a_batch_is_written() -> None:
    broker = FakeBroker(range(6))
    ingestor = RecordingIngestor(broker)
    broker.on_poll = lambda n: n == 2 and ingestor.hold.set()
    await consume(consumer(ingestor, batch_size_max=2), ingestor, offsets=6)
    assert ingestor.polls_before_first_ended == 2  # the second poll was in before it ended
    assert ingestor.applied == [[0, 1], [2, 3], [4, 5]]


async def test_what_arrives_after_the_poll_ahead_joins_its_batch() -> None:
    """Under light load the poll ahead returns early with little; what arrives after it, while
    the batch before is still written, goes with it rather than wait a batch more."""
    broker = FakeBroker([0, 1])
    ingestor = RecordingIngestor(broker)
    ingestor.while_first_is_written = lambda: broker.arrive(2, 3)

    def on_poll(n: int) -> None:
        if n == 2:  # the poll ahead took 2 and 3
            broker.arrive(4, 5)
            ingestor.hold.set()

    broker.on_poll = on_poll
    await consume(consumer(ingestor, batch_size_max=100), ingestor, offsets=6)
    assert ingestor.applied == [[0, 1], [2, 3, 4, 5]]


async def test_a_poll_fetched_before_a_rebalance_is_dropped() -> None:
    broker = FakeBroker(range(4))
    ingestor = RecordingIngestor(broker)
    rebalances: list[asyncio.Task[None]] = []
    owner = consumer(ingestor, batch_size_max=2)

    async def rebalance() -> None:
        listener = _Rebalance(owner)
        revoking = asyncio.create_task(listener.on_partitions_revoked({PARTITION}))
        await asyncio.sleep(0)
        ingestor.hold.set()  # the batch in flight ends; the revocation waits for it
        await revoking
        await listener.on_partitions_assigned({PARTITION})

    def on_poll(n: int) -> None:
        if n == 2:  # 2 and 3 were fetched ahead, then the group rebalances
            rebalances.append(asyncio.get_running_loop().create_task(rebalance()))

    broker.on_poll = on_poll
    await consume(owner, ingestor, offsets=4)
    await asyncio.gather(*rebalances)
    assert broker.sought == [2]  # back to the recorded position: 2 and 3 come again
    assert ingestor.applied == [[0, 1], [2, 3]]
