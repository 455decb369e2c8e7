"""make bench-core: debits/s through the event store for 1, 100 and 1,000 events per save,
next to raw batched INSERT rows/s of rows of the same size into the same PostgreSQL.

Each debit is a real ``Wallet.Debited`` event saved with its usage key (exactly-once on), through
the library's default table-locking recorder. Several rounds are run, alternating ledger and raw
so both see the same machine noise; medians and ratios are printed.
"""

from __future__ import annotations

import os
import time
import uuid

import psycopg

from bench.common import fresh_database, median, spread
from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.domain.usage import Usage, record_usage_on
from ledger_service.service.ledger import LedgerApplication

BATCH_SIZES = (1, 100, 1000)
EVENTS_PER_ROUND = int(os.environ.get("BENCH_EVENTS", "3000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def setup_wallet(ledger: LedgerApplication, company: str) -> None:
    ledger.open_wallet(
        company_id=company,
        currency="USD",
        postpaid_limit="1000000",
        included_quota="0",
        rate_card={"marketing": "0.0125"},
        actor="bench",
        idempotency_key="open",
    )
    ledger.link_sender(
        company_id=company, waba_id=f"{company}-w1", actor="bench", idempotency_key="link"
    )


def ledger_round(ledger: LedgerApplication, company: str, batch: int, total: int) -> float:
    """Debits/s saving ``batch`` debits (and their usage keys) per transaction."""
    wallet = ledger.get_wallet(company)
    started = time.perf_counter()
    done = 0
    while done < total:
        keys = []
        for _ in range(batch):
            usage = Usage(
                source="//bench",
                event_id=uuid.uuid4().hex,
                company_id=company,
                waba_id=f"{company}-w1",
                conversation_id="conv-1",
                category="marketing",
                status="delivered",
                units=1,
            )
            record_usage_on(wallet, usage, trust_producer_price=False)
            keys.append((*usage.key, company))
        ledger.save(wallet, usage_keys=keys)
        done += batch
    return done / (time.perf_counter() - started)


def raw_round(url: str, batch: int, total: int, state: bytes) -> float:
    """Rows/s of plain batched INSERTs of rows shaped like stored events."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS raw_rows (id uuid, version bigint, topic text, "
            "state bytea, n bigserial, PRIMARY KEY (id, version))"
        )
        conn.commit()
        row_id, version = uuid.uuid4(), 0
        started = time.perf_counter()
        done = 0
        while done < total:
            rows = []
            for _ in range(batch):
                version += 1
                rows.append((row_id, version, "ledger_service.domain.wallet:Wallet.Debited", state))
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO raw_rows (id, version, topic, state) VALUES (%s, %s, %s, %s)", rows
                )
            done += batch
        return done / (time.perf_counter() - started)


def sample_state(ledger: LedgerApplication, company: str) -> bytes:
    notifications = ledger.recorder.select_notifications(start=1, limit=1000)
    debits = [n.state for n in notifications if n.topic.endswith("Wallet.Debited")]
    return debits[-1]


def main() -> None:
    with fresh_database() as url:
        ledger = build_ledger(Settings(environment="test"), url)
        company = f"bench-{uuid.uuid4().hex[:8]}"
        setup_wallet(ledger, company)
        ledger_round(ledger, company, 10, 10)  # warm up, and produce a sample event
        state = sample_state(ledger, company)
        print(
            f"bench-core: {EVENTS_PER_ROUND} events per measurement, {ROUNDS} rounds, "
            f"stored event state {len(state)} bytes"
        )
        print(f"{'events/save':>12} {'ledger debits/s':>36} {'raw INSERT rows/s':>36} {'ratio':>7}")
        for batch in BATCH_SIZES:
            total = min(EVENTS_PER_ROUND, 1000) if batch == 1 else EVENTS_PER_ROUND
            ours, raw = [], []
            for _ in range(ROUNDS):
                ours.append(ledger_round(ledger, company, batch, total))
                raw.append(raw_round(url, batch, total, state))
            print(
                f"{batch:>12} {spread(ours):>36} {spread(raw):>36} "
                f"{median(ours) / median(raw):>7.2f}"
            )
        ledger.close()


if __name__ == "__main__":
    main()
