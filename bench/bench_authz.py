"""`make bench-authz`: pre-send authorization latency at 500 req/s, next to /healthz.

The service runs as real processes on a fresh database (`ledger serve`, `ledger project`); this
process is the load generator, open loop (request i is due at start + i/rate and its latency
counts from then). Each round measures, at the same rate and for the same time:

* `GET /v1/wallets/{id}/authorization` answered "allowed";
* the same endpoint answered "denied" (the category's daily cap was reached);
* `GET /v1/wallets/{id}`, the balance read (baseline: the same stack and one row read);
* `GET /healthz`, the HTTP stack alone (baseline).

Floor (issue 6): authorization p99 <= 10 ms at 500 req/s with zero errors.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from bench.bench_api import (
    Run,
    free_port,
    http_workers,
    open_loop,
    start_service,
    stop_service,
    wait_ready,
)
from bench.common import fresh_database
from ledger_service.api.auth import mint_token
from ledger_service.bootstrap import build_ledger
from ledger_service.config import DEVELOPMENT_JWT_SECRET, Settings
from ledger_service.domain.usage import Usage
from ledger_service.service.ledger import LedgerApplication

P99_FLOOR_MS = 10.0


def open_wallets(ledger: LedgerApplication, companies: list[str]) -> None:
    for company in companies:
        ledger.open_wallet(
            company_id=company, currency="USD", postpaid_limit="100", included_quota="1000",
            rate_card={"marketing": "0.05", "utility": "0.01"}, actor="bench",
            idempotency_key="open",
        )  # fmt: skip
        ledger.link_sender(
            company_id=company, waba_id=f"{company}-w", actor="bench", idempotency_key="l"
        )
        ledger.configure_wallet(
            company_id=company, spending_caps={"utility": {"units": 1}}, actor="bench",
            idempotency_key="caps",
        )  # fmt: skip
        ledger.apply_usage(
            Usage(
                source="//bench", event_id=f"{company}-1", company_id=company,
                waba_id=f"{company}-w", conversation_id="c", category="utility",
                status="delivered", units=1,
            )
        )  # fmt: skip


async def round_of(port: int, company: str, args: argparse.Namespace) -> list[Run]:
    token = mint_token(
        DEVELOPMENT_JWT_SECRET, subject="bench", company_id=company, scopes=["billing.view"],
        ttl_s=3600,
    )  # fmt: skip
    base = f"/v1/wallets/{company}/authorization?waba_id={company}-w&units=3&category="
    runs = []
    for name, path in (
        ("authorization (allowed)", base + "marketing"),
        ("authorization (cap reached)", base + "utility"),
        ("GET /v1/wallets/{id} (baseline)", f"/v1/wallets/{company}"),
        ("GET /healthz (baseline)", "/healthz"),
    ):
        workers = http_workers(port, path, token, args.connections)
        runs.append(await open_loop(name, args.rate, args.duration_s, workers))
        print(runs[-1].line(), flush=True)
    return runs


async def bench(args: argparse.Namespace) -> None:
    with fresh_database() as url, tempfile.TemporaryDirectory() as logs:
        ledger = build_ledger(Settings(database_url=url, db_pool_size=2), url)
        companies = [f"authz-{i:03d}" for i in range(args.companies)]
        open_wallets(ledger, companies)
        ledger.close()
        port = free_port()
        service = start_service(url, port, Path(logs))
        try:
            wait_ready(port)
            warm = f"/v1/wallets/{companies[0]}/authorization?waba_id={companies[0]}-w&category=x"
            token = mint_token(
                DEVELOPMENT_JWT_SECRET, subject="bench", company_id=companies[0],
                scopes=["billing.view"], ttl_s=3600,
            )  # fmt: skip
            await open_loop("warm-up", args.rate, 5, http_workers(port, warm, token, 16))
            rounds = []
            for i in range(args.rounds):
                print(f"round {i + 1} of {args.rounds}, open loop, {args.rate:.0f} req/s:")
                rounds.append(await round_of(port, companies[i % len(companies)], args))
        finally:
            stop_service(service)
    report(rounds)


def report(rounds: list[list[Run]]) -> None:
    print(f"\nmedians over {len(rounds)} rounds:")
    verdicts = []
    for column, name in enumerate(run.name for run in rounds[0]):
        p50 = statistics.median(r[column].pct(0.50) for r in rounds)
        p99s = [r[column].pct(0.99) for r in rounds]
        errors = sum(r[column].errors for r in rounds)
        print(
            f"  {name:<28} p50 {p50:6.2f} ms  p99 {statistics.median(p99s):6.2f} ms "
            f"(rounds: {', '.join(f'{p:.2f}' for p in p99s)})  errors {errors}"
        )
        if name.startswith("authorization"):
            verdicts.append(statistics.median(p99s) <= P99_FLOOR_MS and errors == 0)
    healthz = statistics.median(r[-1].pct(0.99) for r in rounds)
    allowed = statistics.median(r[0].pct(0.99) for r in rounds)
    print(f"  ratio authorization p99 / healthz p99: {allowed / healthz:.2f}")
    floor = "met" if all(verdicts) else "NOT met"
    print(f"floor p99 <= {P99_FLOOR_MS:.0f} ms with zero errors at 500 req/s: {floor}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--duration-s", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--companies", type=int, default=50)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
