"""What the soak publishes to Kafka, and the reference it keeps of it.

Unique usage events (CloudEvents, the shape of ``tests/integration/ingestion_support``), plus
duplicates - half re-sent verbatim, half *republished* (same ``source`` and ``id``, new bytes:
another ``time``, another key order) - plus a known number of poison records. The counts are
exact, not probabilistic: each kind is drawn in proportion to what is left of it. The reference
is the soak's own arithmetic: each unique event's price (rate card x units) per company.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaProducer

SOURCE = "//soak/whatsapp"
CURRENCY = "USD"
RATE_CARD = {
    "marketing": Decimal("0.0125"),
    "utility": Decimal("0.004"),
    "authentication": Decimal("0.0035"),
    "service": Decimal("0.0021"),
}
CATEGORY_WEIGHTS = (50, 30, 15, 5)
DUPLICATE_WINDOW = 20_000
"""Duplicates repeat one of the last this many unique events: some land in the same batch as
their original, most in a later one, after the original was applied."""
SETTLE_EVERY = 2_000


@dataclass(frozen=True)
class Company:
    id: str
    senders: tuple[str, ...]


def make_companies(count: int) -> list[Company]:
    """1-3 senders (WABAs) each, linked to the company's shared pool."""
    return [
        Company(f"soak-{i:05d}", tuple(f"soak-{i:05d}-w{j}" for j in range(1 + i % 3)))
        for i in range(count)
    ]


@dataclass
class Reference:
    """Per company: the money the soak credited, moved and charged, by its own arithmetic."""

    usage: dict[str, Decimal] = field(default_factory=dict)
    credited: dict[str, Decimal] = field(default_factory=dict)
    sent: dict[str, Decimal] = field(default_factory=dict)
    received: dict[str, Decimal] = field(default_factory=dict)

    @staticmethod
    def _add(book: dict[str, Decimal], company: str, amount: Decimal) -> None:
        book[company] = book.get(company, Decimal(0)) + amount

    def charge(self, company: str, amount: Decimal) -> None:
        self._add(self.usage, company, amount)

    def credit(self, company: str, amount: Decimal) -> None:
        self._add(self.credited, company, amount)

    def transfer(self, sender: str, receiver: str, sent: Decimal, received: Decimal) -> None:
        self._add(self.sent, sender, sent)
        self._add(self.received, receiver, received)

    def balance(self, company: str) -> Decimal:
        zero = Decimal(0)
        return (
            self.credited.get(company, zero)
            - self.usage.get(company, zero)
            - self.sent.get(company, zero)
            + self.received.get(company, zero)
        )


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes
    poison_code: str | None = None
    """The dead-letter code a poison record must get; None for usage events."""


@dataclass
class StreamCounts:
    unique: int = 0
    verbatim: int = 0
    republished: int = 0
    poison: int = 0

    @property
    def records(self) -> int:
        return self.unique + self.verbatim + self.republished + self.poison


class UsageStream:
    """The records to publish, in order; the reference is charged as unique events are made."""

    def __init__(
        self,
        companies: list[Company],
        *,
        unique: int,
        duplicates_pct: float,
        poison: int,
        seed: int,
        reference: Reference,
    ) -> None:
        self.companies = companies
        duplicates = round(unique * duplicates_pct / (100 - duplicates_pct))
        self.planned = StreamCounts(unique, duplicates - duplicates // 2, duplicates // 2, poison)
        self.counts = StreamCounts()
        self.rng = random.Random(seed)
        self.reference = reference
        self.recent: list[Record] = []
        self.run = f"{seed:x}-{self.rng.getrandbits(32):08x}"

    def __iter__(self) -> Iterator[Record]:
        planned, counts = self.planned, self.counts
        while (left := planned.records - counts.records) > 0:
            unique_left = planned.unique - counts.unique
            duplicates_left = planned.verbatim + planned.republished
            duplicates_left -= counts.verbatim + counts.republished
            draw = self.rng.randrange(left)
            if draw < duplicates_left and self.recent:
                yield self._duplicate()
            elif duplicates_left <= draw < duplicates_left + planned.poison - counts.poison:
                yield self._poison()
            elif unique_left > 0:
                yield self._unique()

    def _unique(self) -> Record:
        rng, company = self.rng, self.rng.choice(self.companies)
        category = rng.choices(list(RATE_CARD), CATEGORY_WEIGHTS)[0]
        units = rng.randint(1, 3)
        event = {
            "specversion": "1.0",
            "id": f"soak-{self.run}-{self.counts.unique:08d}",
            "source": SOURCE,
            "type": "message.sent",
            "time": datetime.now(UTC).isoformat(),
            "subject": company.id,
            "datacontenttype": "application/json",
            "data": {
                "company_id": company.id,
                "waba_id": rng.choice(company.senders),
                "conversation_id": f"conv-{rng.randrange(100_000)}",
                "category": category,
                "status": "delivered",
                "units": units,
            },
        }
        record = Record(company.id.encode(), json.dumps(event).encode())
        self.reference.charge(company.id, RATE_CARD[category] * units)
        self.counts.unique += 1
        self.recent.append(record)
        if len(self.recent) > DUPLICATE_WINDOW:
            del self.recent[: DUPLICATE_WINDOW // 2]
        return record

    def _duplicate(self) -> Record:
        """Alternately the same bytes again, and the same event republished: new ``time``,
        members in another order, so only (source, id) says it is the same event."""
        original = self.rng.choice(self.recent)
        republish = self.counts.republished < self.planned.republished and (
            self.counts.verbatim >= self.planned.verbatim or self.rng.random() < 0.5
        )
        if not republish:
            self.counts.verbatim += 1
            return original
        event: dict[str, Any] = json.loads(original.value)
        event["time"] = datetime.now(UTC).isoformat()
        event["data"] = dict(reversed(event["data"].items()))
        self.counts.republished += 1
        return Record(original.key, json.dumps(dict(reversed(event.items()))).encode())

    def _poison(self) -> Record:
        """Alternately bytes that are not JSON and a CloudEvent that breaks the schema."""
        key = self.rng.choice(self.companies).id.encode()
        self.counts.poison += 1
        if self.counts.poison % 2:
            return Record(key, b'{"specversion": "1.0", "id": ', "MALFORMED_JSON")
        event = {
            "specversion": "1.0", "id": f"poison-{self.run}-{self.counts.poison}",
            "source": SOURCE, "type": "message.sent", "time": datetime.now(UTC).isoformat(),
            "data": {"company_id": key.decode(), "waba_id": "x", "units": "lots"},
        }  # fmt: skip
        return Record(key, json.dumps(event).encode(), "SCHEMA_VIOLATION")


@dataclass
class Published:
    """What the broker acknowledged: each partition's end, and where the poison went."""

    ends: dict[int, int] = field(default_factory=dict)
    poison: dict[tuple[int, int], str] = field(default_factory=dict)
    acknowledged: int = 0
    started_at: float | None = None
    finished_at: float | None = None


async def publish(
    bootstrap: str, topic: str, stream: UsageStream, rate_per_s: float, published: Published
) -> None:
    """Publish the whole stream at a steady ``rate_per_s``, recording every acknowledgement."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        enable_idempotence=False,  # the embedded broker refuses idempotent producers
        max_batch_size=512 * 1024,
    )
    await producer.start()
    published.started_at = started = time.monotonic()
    pending: list[tuple[asyncio.Future[Any], str | None]] = []
    try:
        for sent, record in enumerate(stream, start=1):
            future = await producer.send(topic, value=record.value, key=record.key)
            pending.append((future, record.poison_code))
            if len(pending) >= SETTLE_EVERY:
                await _settle(pending, published)
            ahead = sent / rate_per_s - (time.monotonic() - started)
            if ahead > 0.01:
                await asyncio.sleep(ahead)
        await _settle(pending, published)
    finally:
        await producer.stop()
    published.finished_at = time.monotonic()


async def _settle(pending: list[tuple[asyncio.Future[Any], str | None]], out: Published) -> None:
    for future, poison_code in pending:
        metadata = await future
        end = metadata.offset + 1
        out.ends[metadata.partition] = max(out.ends.get(metadata.partition, 0), end)
        if poison_code is not None:
            out.poison[(metadata.partition, metadata.offset)] = poison_code
        out.acknowledged += 1
    pending.clear()
