"""make bench-replay: rebuild every read model from 1,000,000 events, in events/s, next to the
raw scan rate (a plain SELECT of the same events table, in the same order and sections) measured
in the same run on the same PostgreSQL. Floor: >= 20,000 events/s.

The history is written first through the application's own aggregates (1,000 wallets, usage
debits in batches with their usage keys, a top-up lifecycle every so often), so the events are
exactly what production writes.
"""

from __future__ import annotations

import os
import random
import statistics
import time
import uuid
from uuid import UUID

import psycopg

from bench.common import fresh_database
from ledger_service.audit.replay import replay
from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.domain.usage import Usage, record_usage_on
from ledger_service.ingestion.sample import SampleShape, setup_wallets
from ledger_service.service.ledger import LedgerApplication

EVENTS = int(os.environ.get("BENCH_EVENTS", "1000000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
# Replay batch sizes to compare (e.g. "20000,50000"), alternating in the same run; the first
# one is judged against the floor. `ledger replay` uses 20,000.
REPLAY_BATCHES = [int(b) for b in os.environ.get("BENCH_REPLAY_BATCHES", "20000").split(",")]
COMPANIES = 1000
BATCH = 2000


def write_history(ledger: LedgerApplication, events: int) -> int:
    shape = SampleShape(COMPANIES, 1)
    setup_wallets(ledger, shape, prepaid="0", included_quota="100000", postpaid_limit="0")
    rng = random.Random(3)
    companies = [shape.company(i) for i in range(COMPANIES)]
    written = 0
    while (ledger.recorder.max_notification_id() or 0) < events:
        wallets = {}
        keys = []
        for _ in range(BATCH):
            company = rng.choice(companies)
            usage = Usage(
                source="//bench",
                event_id=uuid.uuid4().hex,
                company_id=company,
                waba_id=shape.sender(company, 0),
                conversation_id="c",
                category=rng.choice(["marketing", "utility", "authentication"]),
                status="failed" if rng.random() < 0.02 else "delivered",
                units=1,
            )
            wallet = wallets.get(company) or ledger.wallet_for_sender(usage.waba_id, company)
            wallets[company] = wallet
            record_usage_on(wallet, usage, trust_producer_price=False)
            keys.append((*usage.key, company))
        ledger.save(*wallets.values(), usage_keys=keys)
        written += BATCH
        if written % 50_000 == 0:
            topup_cycle(ledger, rng.choice(companies), written)
    return ledger.recorder.max_notification_id() or 0


def topup_cycle(ledger: LedgerApplication, company: str, n: int) -> None:
    topup = UUID(
        ledger.request_topup(
            company_id=company, amount="50", currency="USD", actor="bench", idempotency_key=f"t{n}"
        )["topup_id"]
    )
    ledger.approve_topup(topup_id=topup, actor="bench", idempotency_key=f"a{n}")
    ledger.mark_topup_paid(
        topup_id=topup, payment_reference=f"p{n}", actor="bench", idempotency_key=f"p{n}"
    )


def raw_scan(url: str, head: int, section: int = 5000) -> float:
    """Rows/s of reading the events table in notification order, sections of ``section``."""
    started = time.perf_counter()
    rows = 0
    with psycopg.connect(url) as conn:
        start = 1
        while start <= head:
            batch = conn.execute(
                "SELECT originator_id, originator_version, topic, state, notification_id "
                "FROM ledger_events WHERE notification_id >= %s ORDER BY notification_id "
                "LIMIT %s",
                (start, section),
            ).fetchall()
            if not batch:
                break
            rows += len(batch)
            start = batch[-1][4] + 1
    return rows / (time.perf_counter() - started)


def main() -> None:
    with fresh_database() as url:
        ledger = build_ledger(
            Settings(environment="test", log_level="warning"), url, for_ingestion=True
        )
        started = time.perf_counter()
        head = write_history(ledger, EVENTS)
        print(f"bench-replay: wrote {head:,} events in {time.perf_counter() - started:.0f}s")
        ours: dict[int, list[float]] = {batch: [] for batch in REPLAY_BATCHES}
        raw: list[float] = []
        for _ in range(ROUNDS):
            raw.append(raw_scan(url, head))
            for batch in REPLAY_BATCHES:
                result = replay(
                    ledger, lambda: psycopg.connect(url), live_schema="public", batch_size_max=batch
                )
                assert result.position == head
                ours[batch].append(result.events_per_s)
        ledger.close()
    for batch, rates in ours.items():
        print(
            f"replay into all read models, batches of {batch:,}: median "
            f"{statistics.median(rates):,.0f} events/s "
            f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})"
        )
    print(
        f"raw SELECT scan of the events table: median {statistics.median(raw):,.0f} rows/s "
        f"(runs: {', '.join(f'{r:,.0f}' for r in raw)})"
    )
    default = statistics.median(ours[REPLAY_BATCHES[0]])
    print(
        f"ratio replay (batches of {REPLAY_BATCHES[0]:,}) / raw scan: "
        f"{default / statistics.median(raw):.2f}; floor 20,000 events/s: "
        f"{'met' if default >= 20_000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
