"""While the last batch of a poll is written, the next poll's batches of other partitions start;
a partition's own batches stay one after the other; a poll takes the records of a partition
with no batch in flight before a busy one's.

A scripted stand-in for the broker client, several partitions; the consumer's own loop,
decoding thread and slots are the real ones (the broker itself: the integration tests).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from ledger_service.ingestion.records import Consumed
from ledger_service.service.usage import BatchOutcome
from tests.unit.scripted_consumer import scripted_consumer

P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)


class Broker:
    """Each partition's log; ``getmany`` hands out what has arrived past each position, at
    once or after its timeout. ``on_poll`` runs as a non-empty poll is handed out."""

    def __init__(self, logs: dict[TopicPartition, list[int]], on_poll: Any = None) -> None:
        self.logs = logs
        self.positions = dict.fromkeys(logs, 0)
        self.polls = 0
        self.on_poll = on_poll

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, Any]:
        """As the client does: only ``partitions`` (all if none), each partition's records in
        turn until ``max_records``."""
        batches: dict[TopicPartition, Any] = {}
        room = max_records
        for tp, log in self.logs.items():
            if (partitions and tp not in partitions) or self.positions[tp] >= len(log):
                continue
            if room == 0:
                break
            offsets = log[self.positions[tp] : self.positions[tp] + room]
            batches[tp] = [
                ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, b"k", b"{}", None, 1, 2, ())
                for offset in offsets
            ]
            self.positions[tp] += len(offsets)
            room -= len(offsets)
        if not batches:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        self.polls += 1
        if self.on_poll is not None:
            self.on_poll(self.polls)
        return batches

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs)

    def highwater(self, partition: TopicPartition) -> None:
        return None


class Ingestor:
    """Records when each batch (partition, offsets) began and ended. The batch ``held`` (its
    partition and first offset) stays in flight for ``hold_s``, or until the batch
    ``released_by`` is applied."""

    def __init__(
        self,
        held: tuple[int, int],
        hold_s: float,
        released_by: tuple[int, int] | None = None,
        then: Any = None,
    ) -> None:
        self.then = then
        """Called with (partition, first offset) as each batch ends."""
        self.held = held
        self.hold_s = hold_s
        self.released_by = released_by
        self.release = threading.Event()
        self.spans: list[tuple[float, float, int, list[int]]] = []

    @staticmethod
    def decode(batch: Sequence[Consumed]) -> list[Any]:
        return [(record.offset, None) for record in batch]

    def apply_batch(self, batch: Sequence[Consumed], decoded: Any = None) -> BatchOutcome:
        began = time.monotonic()
        partition, offsets = batch[0].partition, [record.offset for record in batch]
        if (partition, offsets[0]) == self.held:
            self.release.wait(timeout=self.hold_s)
        else:
            time.sleep(0.01)
        self.spans.append((began, time.monotonic(), partition, offsets))
        if (partition, offsets[0]) == self.released_by:
            self.release.set()
        if self.then is not None:
            self.then(partition, offsets[0])
        return BatchOutcome()

    def span(self, partition: int, first_offset: int) -> tuple[float, float]:
        began, ended, _, _ = next(
            s for s in self.spans if s[2] == partition and s[3][0] == first_offset
        )
        return began, ended


async def consume(
    broker: Broker, ingestor: Ingestor, records: int, batch_size_max: int = 1000
) -> None:
    owner = scripted_consumer(
        ingestor, broker, poll_timeout_ms=10, concurrency=2, batch_size_max=batch_size_max
    )
    owner._loop = asyncio.get_running_loop()
    owner._decoder = ThreadPoolExecutor(max_workers=1)
    stop = asyncio.Event()
    task = asyncio.create_task(owner._consume_until(stop))
    for _ in range(500):
        if sum(len(offsets) for *_, offsets in ingestor.spans) >= records:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    owner._decoder.shutdown()


async def test_the_next_poll_starts_while_the_last_batch_of_a_poll_is_written() -> None:
    """Partition 1's first batch is written until partition 0's next batch gets through (or
    for 2 s). Partition 0's next records, polled meanwhile, are applied without waiting for
    the end of the whole first poll."""
    logs = {P0: [0, 1], P1: [0, 1]}
    broker = Broker(logs)
    ingestor = Ingestor(
        held=(1, 0),
        hold_s=2.0,
        released_by=(0, 2),
        then=lambda p, o: (p, o) == (0, 0) and logs[P0].extend([2, 3]),
    )
    await consume(broker, ingestor, records=6)
    assert sorted((p, o) for _, _, p, o in ingestor.spans) == [
        (0, [0, 1]),
        (0, [2, 3]),
        (1, [0, 1]),
    ]
    p0_next_began, _ = ingestor.span(0, 2)
    _, p1_ended = ingestor.span(1, 0)
    assert p0_next_began < p1_ended
    assert p1_ended - p0_next_began < 1.0  # it was what released the held batch


async def test_a_partitions_batches_stay_one_after_the_other() -> None:
    """Partition 0's first batch is written for 0.3 s; its next records, polled meanwhile,
    wait for it although a slot is free (partition 1's batch is done)."""
    logs = {P0: [0, 1], P1: [0, 1]}
    broker = Broker(logs)
    ingestor = Ingestor(
        held=(0, 0), hold_s=0.3, then=lambda p, o: (p, o) == (1, 0) and logs[P0].extend([2, 3])
    )
    await consume(broker, ingestor, records=6)
    _, first_ended = ingestor.span(0, 0)
    second_began, _ = ingestor.span(0, 2)
    assert second_began >= first_ended


async def test_a_poll_takes_a_partition_without_a_batch_in_flight_first() -> None:
    """Polls of two records; partition 0 comes first and has four. Its first batch is written
    until partition 1's batch gets through (or for 2 s): the next poll takes partition 1's
    records, not partition 0's next ones, which would wait for the batch in flight."""
    logs = {P0: [0, 1, 2, 3], P1: [0, 1]}
    broker = Broker(logs)
    ingestor = Ingestor(held=(0, 0), hold_s=2.0, released_by=(1, 0))
    await consume(broker, ingestor, records=6, batch_size_max=2)
    assert sorted((p, o) for _, _, p, o in ingestor.spans) == [
        (0, [0, 1]),
        (0, [2, 3]),
        (1, [0, 1]),
    ]
    p1_began, _ = ingestor.span(1, 0)
    _, p0_first_ended = ingestor.span(0, 0)
    assert p1_began < p0_first_ended
    assert p0_first_ended - p1_began < 1.0  # partition 1's batch released it
