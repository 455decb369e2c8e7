"""`ledger publish-sample`: realistic usage traffic for demos and benchmarks."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from ledger_service.domain.money import parse_amount
from ledger_service.domain.wallet import CreditBucket, CreditKind
from ledger_service.service.ledger import LedgerApplication

CATEGORY_WEIGHTS = {"marketing": 50, "utility": 30, "authentication": 15, "service": 5}
RATE_CARD = {"marketing": "0.0125", "utility": "0.004", "authentication": "0.0035", "service": "0"}
FAILED_PCT = 2
SOURCE = "//messaging/whatsapp"


@dataclass(frozen=True)
class SampleShape:
    companies: int
    senders_per_company: int
    prefix: str = "sample"

    def company(self, index: int) -> str:
        return f"{self.prefix}-{index:05d}"

    def sender(self, company: str, index: int) -> str:
        return f"{company}-w{index}"


def setup_wallets(
    ledger: LedgerApplication,
    shape: SampleShape,
    *,
    prepaid: str = "0",
    included_quota: str = "1000",
    postpaid_limit: str = "500",
) -> None:
    """Open the sample wallets and link their senders; idempotent, safe to run again."""
    for i in range(shape.companies):
        company = shape.company(i)
        ledger.open_wallet(
            company_id=company,
            currency="USD",
            postpaid_limit=parse_amount(postpaid_limit),
            included_quota=parse_amount(included_quota),
            rate_card={category: parse_amount(price) for category, price in RATE_CARD.items()},
            actor="publish-sample",
            idempotency_key="sample-open",
        )
        for j in range(shape.senders_per_company):
            waba = shape.sender(company, j)
            ledger.link_sender(
                company_id=company,
                waba_id=waba,
                actor="publish-sample",
                idempotency_key=f"sample-link-{waba}",
            )
        if prepaid != "0":
            ledger.credit_wallet(
                company_id=company,
                amount=parse_amount(prepaid),
                kind=CreditKind.GRANT,
                bucket=CreditBucket.PREPAID,
                reference="sample prepaid",
                actor="publish-sample",
                idempotency_key="sample-prepaid",
            )


def sample_events(
    shape: SampleShape, count: int, *, duplicates_pct: float = 0, seed: int | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs; ``duplicates_pct`` of them repeat an earlier event byte for byte."""
    rng = random.Random(seed)
    categories = list(CATEGORY_WEIGHTS)
    weights = list(CATEGORY_WEIGHTS.values())
    recent: list[tuple[bytes, bytes]] = []
    for _ in range(count):
        if recent and rng.random() * 100 < duplicates_pct:
            yield rng.choice(recent)
            continue
        company = shape.company(rng.randrange(shape.companies))
        event = {
            "specversion": "1.0",
            "id": f"msg-{uuid.uuid4().hex}",
            "source": SOURCE,
            "type": "message.sent",
            "time": datetime.now(UTC).isoformat(),
            "subject": company,
            "datacontenttype": "application/json",
            "data": {
                "company_id": company,
                "waba_id": shape.sender(company, rng.randrange(shape.senders_per_company)),
                "conversation_id": f"conv-{rng.randrange(1_000_000)}",
                "category": rng.choices(categories, weights)[0],
                "status": "failed" if rng.random() * 100 < FAILED_PCT else "delivered",
                "units": 1,
            },
        }
        pair = (company.encode(), json.dumps(event, separators=(",", ":")).encode())
        recent = [*recent[-999:], pair]
        yield pair


async def publish(
    bootstrap: str,
    topic: str,
    events: Iterator[tuple[bytes, bytes]],
    *,
    rate_per_s: float | None = None,
) -> int:
    """Publish ``events``; at most ``rate_per_s`` per second when given. Returns the count."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=5,
        acks="all",
        enable_idempotence=False,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        pending: list[asyncio.Future[Any]] = []
        for key, value in events:
            pending.append(await producer.send(topic, value=value, key=key))
            sent += 1
            if rate_per_s:
                ahead = sent / rate_per_s - (time.monotonic() - started)
                if ahead > 0.005:
                    await asyncio.sleep(ahead)
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
