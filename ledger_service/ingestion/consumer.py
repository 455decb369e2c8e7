"""The usage-event consumer: an aiokafka consumer-group member driving ``UsageIngestor``.

Offsets are never committed to Kafka. The consumed position of each partition is recorded in
the event store with the deductions it produced, and on assignment the consumer seeks to it.
A rebalance waits for the in-flight batch (``on_partitions_revoked`` takes the batch lock), and
even a consumer that lost its partition mid-batch cannot double-apply: the usage keys and the
forward-only position fail its transaction.

The consumer polls one poll ahead: while a poll's batches are written, the next poll is fetched
from the broker and decoded in a thread of its own, so neither the broker's answer nor decoding
waits behind the writing. A poll fetched before a rebalance is dropped: on assignment every
partition is sought back to its recorded position, and those records come again.

When the event store or the broker is unavailable the consumer keeps the batch, reports not
ready and retries with backoff; it never skips or dead-letters because of an outage. SIGTERM
(the ``stop`` event) lets the in-flight batch finish, then the consumer leaves the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError

from ledger_service.domain.usage import Usage
from ledger_service.ingestion.batch import BatchOutcome, Item, UsageIngestor
from ledger_service.ingestion.records import Consumed, DeadLetter
from ledger_service.metrics import (
    INGESTION_BATCH_SECONDS,
    INGESTION_COMMIT_LAG_SECONDS,
    INGESTION_LAST_COMMIT,
    INGESTION_READY,
    INGESTION_RECORDS_BEHIND,
    observe_each,
)
from ledger_service.service.runner import StoreUnavailable

log = structlog.get_logger(__name__)

DEAD_LETTER_SEND_TIMEOUT_S = 30.0
LEDGER_HEADER_PREFIX = "ledger-"
Committed = Callable[[Sequence[Consumed], BatchOutcome], None]


def to_consumed(record: ConsumerRecord[bytes, bytes]) -> Consumed:
    headers = record.headers
    return Consumed(
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value,
        tuple(headers) if headers else (),
        record.timestamp,
    )


def dead_letter_headers(dead_letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The original headers (minus an earlier round's ledger-* ones) plus why and where from."""
    record = dead_letter.record
    kept = [(k, v) for k, v in record.headers if not k.startswith(LEDGER_HEADER_PREFIX)]
    return [
        *kept,
        ("ledger-error-code", dead_letter.code.encode()),
        ("ledger-error-message", dead_letter.message.encode()[:1000]),
        ("ledger-original-topic", record.topic.encode()),
        ("ledger-original-partition", str(record.partition).encode()),
        ("ledger-original-offset", str(record.offset).encode()),
    ]


class UsageConsumer:
    def __init__(
        self,
        ingestor: UsageIngestor,
        *,
        bootstrap: str,
        topic: str,
        dlq_topic: str,
        group_id: str,
        batch_size_max: int = 1000,
        poll_timeout_ms: int = 200,
        fetch_max_wait_ms: int = 50,
        backoff_max_s: float = 5.0,
        stall_s: float = 5.0,
        concurrency: int = 1,
        on_committed: Committed | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.bootstrap = bootstrap
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.group_id = group_id
        self.batch_size_max = batch_size_max
        self.poll_timeout_ms = poll_timeout_ms
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.backoff_max_s = backoff_max_s
        self.stall_s = stall_s
        self.on_committed = on_committed
        self.ready = False
        self._applying: set[asyncio.Task[None]] = set()
        """Partition batches started and not finished: a rebalance waits for all of them."""
        self._concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._in_flight: set[str] = set()
        """Companies whose usage is being applied (``_companies_to_oneself``)."""
        self._in_flight_changed = asyncio.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._decoder: ThreadPoolExecutor | None = None
        self._assignments = 0
        """Counts rebalances (at revocation and after assignment): a poll fetched under an
        older count is dropped, its partitions having been sought since."""

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage-decode")
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=5,
            enable_idempotence=False,  # the embedded Tansu broker refuses idempotent producers
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            # Positions come from the event store; never let the client pick one silently.
            auto_offset_reset="none",
            max_poll_records=self.batch_size_max,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        await self._producer.start()
        try:
            await self._consumer.start()
            self._consumer.subscribe([self.topic], listener=_Rebalance(self))
            log.info("consumer_started", topic=self.topic, group=self.group_id)
            await self._consume_until(stop)
        finally:
            self._set_ready(False)
            await self._consumer.stop()  # leaves the group: partitions move on at once
            await self._producer.stop()
            self._decoder.shutdown(wait=False, cancel_futures=True)
            log.info("consumer_stopped", topic=self.topic)

    async def _consume_until(self, stop: asyncio.Event) -> None:
        # One poll ahead: the next poll is fetched (and decoded) while this one is written.
        # Waiting for the broker after each batch left the writing thread idle for a third
        # of the time in a busy partition.
        polling = asyncio.ensure_future(self._poll())
        previous: list[asyncio.Task[None]] = []
        """The batches of the poll before the latest."""
        after: dict[TopicPartition, asyncio.Task[None]] = {}
        """Each partition's latest batch."""
        try:
            while not stop.is_set():
                poll = await self._topped_up(await polling, _busy(after))
                polling = asyncio.ensure_future(self._poll(busy=_busy(after, poll)))
                if poll is None:
                    continue
                self._set_ready(True)
                await self._observe_backlog()
                # No await from this check to the batches' start: a rebalance that begins
                # later waits for them (``_Rebalance``), one that began drops this poll.
                if poll.assignments != self._assignments:
                    # Fetched before a rebalance; on assignment every partition was sought
                    # back to its recorded position, so these records come again.
                    continue
                current = [
                    self._start_partition(partition, records, decoded, stop, after)
                    for partition, (records, decoded) in poll.batches.items()
                ]
                await _finished(previous)
                # The next poll is taken (and topped up with what arrived meanwhile) once a
                # slot is free that no batch of this one is waiting for: its batches of other
                # partitions fill it while this poll's last one is written. Waiting for the
                # whole poll left a slot idle at the end of every poll. Two polls at most are
                # in flight, and a partition's batch waits for its batch before.
                await _until_fewer_than(current, self._concurrency)
                previous = current
        finally:
            polling.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await polling
            await self.drained()  # a batch in a thread cannot be cancelled: let it finish
            _retrieve_failures(after.values())
        await _finished(list(after.values()))  # a failure of the last batches: the loop's own

    def _start_partition(
        self,
        partition: TopicPartition,
        records: list[Consumed],
        decoded: asyncio.Future[list[Item]],
        stop: asyncio.Event,
        after: dict[TopicPartition, asyncio.Task[None]],
    ) -> asyncio.Task[None]:
        """Start applying one partition's batch once that partition's batch before it is done
        (``after``, updated): a partition's batches stay in order."""
        task = asyncio.create_task(
            self._apply_partition(partition, records, decoded, stop, after.get(partition))
        )
        after[partition] = task
        self._applying.add(task)
        task.add_done_callback(self._applying.discard)
        return task

    async def drained(self) -> None:
        """Return once no batch is being applied (their failures are the main loop's)."""
        while self._applying:
            await asyncio.wait(set(self._applying))

    async def _topped_up(
        self, poll: _Poll | None, busy: frozenset[TopicPartition] = frozenset()
    ) -> _Poll | None:
        """``poll`` (fetched ahead, when the batch before it began) and what else has arrived
        since, up to a batch's size: under light load, records that came in while the batch
        before was written go with this one rather than wait for the next."""
        if poll is None or poll.size >= self.batch_size_max:
            return poll
        more = await self._poll(
            max_records=self.batch_size_max - poll.size, timeout_ms=0, busy=busy
        )
        if more is None or not more.batches:
            return poll
        if more.assignments != poll.assignments:
            return more  # the older one is stale: its partitions were sought since
        return poll.followed_by(more)

    async def _poll(
        self,
        max_records: int | None = None,
        timeout_ms: int | None = None,
        busy: frozenset[TopicPartition] = frozenset(),
    ) -> _Poll | None:
        """The next poll's batches, each being decoded in the decoding thread (it needs only
        the records, and batches are decoded in the order they will be applied); None when
        there was nothing to poll yet."""
        assert self._consumer is not None
        try:
            batches = await self._fetched(
                self.batch_size_max if max_records is None else max_records,
                self.poll_timeout_ms if timeout_ms is None else timeout_ms,
                busy,
            )
        except OffsetOutOfRangeError as exc:
            log.error(
                "consumer_position_out_of_range",
                error=str(exc),
                hint="the topic was recreated or truncated; after checking, run "
                "`ledger positions forget --topic <topic> --yes` and restart",
            )
            raise
        except NoOffsetForPartitionError:
            # The fetcher raced ahead of our seek on a fresh assignment; the rebalance
            # listener sets the position from the event store. Poll again.
            await asyncio.sleep(0.05)
            return None
        decoding = {
            partition: self._decoding([to_consumed(r) for r in records])
            for partition, records in batches.items()
        }
        return _Poll(self._assignments, decoding)

    async def _fetched(
        self, limit: int, timeout_ms: int, busy: frozenset[TopicPartition]
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        """Up to ``limit`` fetched records, from partitions that are not ``busy`` (a batch of
        theirs is in flight or about to start) if those have any. The client hands out one
        partition's fetched records until they run out, so under load a poll was one busy
        partition's batch after another, each waiting for the one before it: about 1.3
        batches in flight out of 2, the interpreter idle while each was written. Another
        partition's batch is planned while the busy one is written; a busy partition's
        records wait only when no other partition has any."""
        assert self._consumer is not None
        free = sorted(self._consumer.assignment() - busy) if busy else []
        batches = {}
        if free:
            batches = await self._consumer.getmany(*free, timeout_ms=0, max_records=limit)
        if not batches:
            batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=limit)
        return cast(dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], batches)

    async def _apply_partition(
        self,
        partition: TopicPartition,
        records: list[Consumed],
        decoded: asyncio.Future[list[Item]],
        stop: asyncio.Event,
        before: asyncio.Task[None] | None = None,
    ) -> None:
        """One partition's batch of a poll, after ``before`` (the partition's batch before it,
        if still in flight; its failure is this one's). Batches of different partitions
        touch different wallets (the key is the company) and each is its own transaction
        with its own position, so up to ``concurrency`` of them run at once: one is planned
        while another is written."""
        assert self._consumer is not None
        if before is not None:
            await before
        items = await decoded
        companies = {item.company_id for _, item in items if isinstance(item, Usage)}
        async with self._slots, self._companies_to_oneself(companies):
            if partition not in self._consumer.assignment():
                return  # revoked while we waited: its new owner takes it
            await self._apply_until_done(records, items, stop)

    @contextlib.asynccontextmanager
    async def _companies_to_oneself(self, companies: set[str]) -> AsyncIterator[None]:
        """Wait until no batch in flight has usage of these companies, and hold them. A
        company's wallets are touched only by its own usage; with records keyed by company
        (the contract) partitions never share one, but a keyless record can land anywhere,
        and two batches must never plan on the same cached wallet at once."""
        async with self._in_flight_changed:
            await self._in_flight_changed.wait_for(lambda: not companies & self._in_flight)
            self._in_flight |= companies
        try:
            yield
        finally:
            async with self._in_flight_changed:
                self._in_flight -= companies
                self._in_flight_changed.notify_all()

    def _decoding(
        self, records: list[Consumed]
    ) -> tuple[list[Consumed], asyncio.Future[list[Item]]]:
        """The records and their decoding, under way in the decoding thread (one: batches
        are decoded in the order they will be applied)."""
        assert self._loop is not None
        assert self._decoder is not None
        return records, self._loop.run_in_executor(self._decoder, self.ingestor.decode, records)

    async def _apply_until_done(
        self, records: list[Consumed], decoded: list[Item], stop: asyncio.Event
    ) -> None:
        """Apply a batch, waiting out outages. Gives up only when asked to stop (then the
        batch is simply not recorded and will be consumed again)."""
        attempt = 0
        while True:
            try:
                with INGESTION_BATCH_SECONDS.time():
                    outcome = await self._apply_watching_for_stalls(records, decoded)
            except (StoreUnavailable, KafkaError, TimeoutError) as exc:
                self._set_ready(False)
                delay = min(self.backoff_max_s, 0.1 * 2**attempt)
                log.warning(
                    "ingestion_unavailable",
                    error=str(exc)[:300],
                    retry_in_s=delay,
                    partition=records[0].partition,
                    records=len(records),
                )
                attempt += 1
                if await _stopped_within(stop, delay):
                    return
                continue
            self._set_ready(True)
            _observe_commit(records)
            if self.on_committed is not None:
                self.on_committed(records, outcome)
            return

    async def _apply_watching_for_stalls(
        self, records: list[Consumed], decoded: list[Item]
    ) -> BatchOutcome:
        """The event store's own retries can hold a batch for a long time during an outage;
        report not-ready as soon as it stalls, and keep waiting for it."""
        task = asyncio.ensure_future(asyncio.to_thread(self.ingestor.apply_batch, records, decoded))
        done, _ = await asyncio.wait({task}, timeout=self.stall_s)
        if not done:
            self._set_ready(False)
            log.warning(
                "ingestion_stalled",
                seconds=self.stall_s,
                records=len(records),
                partition=records[0].partition,
            )
        return await task

    async def _observe_backlog(self) -> None:
        """Records behind, from the high watermarks the last fetches reported."""
        assert self._consumer is not None
        behind = 0
        for partition in self._consumer.assignment():
            high = self._consumer.highwater(partition)
            if high is None:
                continue
            try:  # known after a fetch; a partition being reassigned is skipped
                position = await asyncio.wait_for(self._consumer.position(partition), 0.5)
            except (KafkaError, TimeoutError, AssertionError):
                continue
            behind += max(high - position, 0)
        INGESTION_RECORDS_BEHIND.set(behind)

    def _set_ready(self, ready: bool) -> None:
        self.ready = ready
        INGESTION_READY.set(1 if ready else 0)

    # -- called from the ingestor's worker thread -----------------------------------------

    def publish_dead_letter(self, dead_letter: DeadLetter) -> None:
        """Blocking: returns once the broker acknowledged the dead letter."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._send_dead_letter(dead_letter), self._loop)
        future.result(timeout=DEAD_LETTER_SEND_TIMEOUT_S)

    async def _send_dead_letter(self, dead_letter: DeadLetter) -> None:
        assert self._producer is not None
        record = dead_letter.record
        await self._producer.send_and_wait(
            self.dlq_topic,
            value=record.value,
            key=record.key,
            headers=dead_letter_headers(dead_letter),
        )

    # -- partition assignment -------------------------------------------------------------

    async def _recorded_position(self, tp: TopicPartition) -> int | None:
        """Read a partition's recorded position, waiting out an event-store outage: starting
        anywhere else could skip or repeat work."""
        attempt = 0
        while True:
            try:
                return await asyncio.to_thread(self.ingestor.next_offset, tp.topic, tp.partition)
            except StoreUnavailable as exc:
                self._set_ready(False)
                delay = min(self.backoff_max_s, 0.1 * 2**attempt)
                log.warning("position_unavailable", error=str(exc)[:300], retry_in_s=delay)
                attempt += 1
                await asyncio.sleep(delay)

    async def seek_to_recorded_positions(self, partitions: set[TopicPartition]) -> None:
        assert self._consumer is not None
        for tp in partitions:
            recorded = await self._recorded_position(tp)
            if recorded is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                # Past the log's end (a recreated topic) the fetch fails with
                # OffsetOutOfRange (auto_offset_reset="none"): loud, never a silent skip.
                self._consumer.seek(tp, recorded)
            log.info("partition_assigned", partition=tp.partition, next_offset=recorded)


@dataclass(frozen=True, slots=True)
class _Poll:
    assignments: int
    """``UsageConsumer._assignments`` when the poll returned."""
    batches: dict[TopicPartition, tuple[list[Consumed], asyncio.Future[list[Item]]]]

    @property
    def size(self) -> int:
        return sum(len(records) for records, _ in self.batches.values())

    def followed_by(self, later: _Poll) -> _Poll:
        """This poll and a later one as one: each partition's records in order."""
        batches = dict(self.batches)
        for partition, (records, decoded) in later.batches.items():
            if partition not in batches:
                batches[partition] = (records, decoded)
                continue
            earlier, earlier_decoded = batches[partition]
            joined = asyncio.ensure_future(_joined(earlier_decoded, decoded))
            batches[partition] = ([*earlier, *records], joined)
        return _Poll(later.assignments, batches)


def _busy(
    after: dict[TopicPartition, asyncio.Task[None]], poll: _Poll | None = None
) -> frozenset[TopicPartition]:
    """Partitions with a batch in flight (``after``) or about to start (``poll``'s)."""
    busy = {partition for partition, task in after.items() if not task.done()}
    if poll is not None:
        busy.update(poll.batches)
    return frozenset(busy)


async def _joined(
    first: asyncio.Future[list[Item]], second: asyncio.Future[list[Item]]
) -> list[Item]:
    return [*(await first), *(await second)]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: UsageConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.owner._assignments += 1  # a poll fetched ahead is not applied now
        # Wait for the batches in flight so the next owner starts after them.
        await self.owner.drained()
        log.info("partitions_revoked", partitions=sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.owner.seek_to_recorded_positions(set(assigned))
        self.owner._assignments += 1  # a poll that returned before the seeks is stale


async def _finished(batches: list[asyncio.Task[None]]) -> None:
    """Wait for all of ``batches``; then raise the first failure among them, if any."""
    if not batches:
        return
    await asyncio.wait(batches)
    for batch in batches:
        if not batch.cancelled() and batch.exception() is not None:
            await batch  # raises it


async def _until_fewer_than(batches: list[asyncio.Task[None]], count: int) -> None:
    """Return once fewer than ``count`` of ``batches`` are unfinished."""
    pending = {batch for batch in batches if not batch.done()}
    while len(pending) >= count:
        _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)


def _retrieve_failures(batches: Iterable[asyncio.Task[None]]) -> None:
    """Mark the failures of finished batches as seen: the first one is raised by the main
    loop, and asyncio would log the others as never retrieved."""
    for batch in batches:
        if batch.done() and not batch.cancelled():
            batch.exception()


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


def _observe_commit(records: list[Consumed]) -> None:
    """Produce-to-commit latency of the batch's records, and when the consumer last committed."""
    now = time.time()
    INGESTION_LAST_COMMIT.set(now)
    observe_each(
        INGESTION_COMMIT_LAG_SECONDS,
        (max(now - r.timestamp_ms / 1000, 0.0) for r in records if r.timestamp_ms > 0),
    )
