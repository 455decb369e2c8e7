"""`make bench-holds`: hold requests (`POST /v1/wallets/{id}/holds`) under open-loop load.

The service runs as real processes on a fresh database (`ledger serve`, `ledger project`); this
process is the load generator (open loop: request i is due at start + i/rate and its latency
counts from then, so a stalled server cannot hide its queue). Each request holds one message
with a new reference, so every one writes.

First a warm-up (one hold per wallet: the cold loads of a restarted service, reported apart).
Then for each rate (500 and 2,000 req/s), in the same run: `GET /healthz` (the HTTP stack alone, the
baseline), holds spread over 1,000 wallets, and holds on one hot wallet.

Floors (issue 13): p99 <= 15 ms at 500/s; 2,000/s sustained (spread) with p99 <= 50 ms and
zero errors.

`--in-process`: instead, the same open-loop schedule straight into a ``HoldBatcher`` in this
process (no HTTP, no projector): what the group commit and the store cost alone, to tell them
apart from the HTTP path.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from bench.bench_api import (
    HttpConnection,
    Run,
    free_port,
    http_workers,
    open_companies,
    open_loop,
    start_service,
    stop_service,
    wait_ready,
)
from bench.common import fresh_database
from ledger_service.api.auth import mint_token
from ledger_service.bootstrap import build_ledger
from ledger_service.config import DEVELOPMENT_JWT_SECRET, Settings
from ledger_service.service.hold_batcher import HoldBatcher
from ledger_service.service.holds import PlaceHold

FLOORS_MS = {500.0: 15.0, 2000.0: 50.0}


def hold_workers(
    ports: list[int], token: str, companies: list[str], count: int
) -> list[Callable[[], Awaitable[bool]]]:
    """Workers (one connection each, spread over the ``ports`` of the serve processes) that
    each POST a hold with a new reference, cycling through ``companies``. With several serve
    processes a company always goes to the same one, as a load balancer hashing the path
    would send it: two processes deciding holds of one wallet at once would only conflict."""
    references = itertools.count()
    shards = [
        (port, itertools.cycle(companies[i :: len(ports)]))
        for i, port in enumerate(ports)
        if companies[i :: len(ports)]
    ]
    workers = []
    for number in range(count):
        port, targets = shards[number % len(shards)]
        conn = HttpConnection("127.0.0.1", port)

        async def call(conn: HttpConnection = conn, targets: Any = targets) -> bool:
            company = next(targets)
            hold = {"waba_id": f"{company}-w", "category": "marketing", "units": 1}
            body = json.dumps(hold | {"reference": f"msg-{next(references)}"}).encode()
            request = (
                f"POST /v1/wallets/{company}/holds HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            return await conn.get(request) == 201

        workers.append(call)
    return workers


def healthz_workers(ports: list[int], token: str, count: int) -> list[Any]:
    share = [count // len(ports) + (i < count % len(ports)) for i in range(len(ports))]
    return [w for port, n in zip(ports, share, strict=True)
            for w in http_workers(port, "/healthz", token, n)]  # fmt: skip


async def measure(ports: list[int], companies: list[str], args: argparse.Namespace) -> list[Run]:
    sender = mint_token(
        DEVELOPMENT_JWT_SECRET, subject="bench-sender", company_id=None,
        scopes=["billing.usage"], ttl_s=3600,
    )  # fmt: skip
    # A restarted service loads each wallet on its first hold (two queries each); that cold
    # start is reported on its own line, and the measured runs start with every wallet loaded.
    warm_up = await open_loop(
        "warm-up: each wallet once", 500, len(companies) / 500,
        hold_workers(ports, sender, companies, args.connections),
    )  # fmt: skip
    print(warm_up.line(), flush=True)
    runs = []
    for rate in args.rates:
        scenarios = (
            ("healthz", lambda: healthz_workers(ports, sender, args.connections)),
            (f"holds, {len(companies)} wallets", lambda: hold_workers(
                ports, sender, companies, args.connections)),
            ("holds, one hot wallet", lambda: hold_workers(
                ports, sender, companies[:1], args.connections)),
        )  # fmt: skip
        for name, workers in scenarios:
            run = await open_loop(name, rate, args.duration_s, workers())
            print(run.line(), flush=True)
            runs.append(run)
    return runs


def _timed(run: Run, due: float) -> Callable[[Future[Any]], None]:
    def done(future: Future[Any]) -> None:
        if future.exception() is None:
            run.latencies_ms.append((time.perf_counter() - due) * 1000)

    return done


def in_process(url: str, companies: list[str], args: argparse.Namespace) -> None:
    """Holds spread over ``companies`` straight into a batcher, on the open-loop schedule."""
    ledger = build_ledger(Settings(database_url=url, db_pool_size=4, db_pool_overflow_max=4), url)
    batcher = HoldBatcher(ledger)
    batcher.start()
    for rate in args.rates:
        run = Run(f"in-process, {len(companies)} wallets", rate)
        total = int(rate * args.duration_s)
        start = time.perf_counter()
        futures = []
        for i in range(total):
            due = start + i / rate
            if (delay := due - time.perf_counter()) > 0:
                time.sleep(delay)
            company = companies[i % len(companies)]
            command = PlaceHold(
                company_id=company, waba_id=f"{company}-w", category="marketing", units=1,
                reference=f"in-{rate:.0f}-{i}", actor="bench", idempotency_key="bench",
            )  # fmt: skip
            future = batcher.submit(command)
            future.add_done_callback(_timed(run, due))
            futures.append(future)
        for future in futures:
            if future.exception() is not None:
                run.errors += 1
        run.elapsed_s = time.perf_counter() - start
        print(run.line() + f"  groups so far {batcher.groups:,}", flush=True)
    batcher.close()
    ledger.close()


async def bench(args: argparse.Namespace) -> None:
    with fresh_database() as url, tempfile.TemporaryDirectory() as logs:
        settings = Settings(database_url=url, db_pool_size=4, db_pool_overflow_max=4)
        ledger = build_ledger(settings, url)
        companies = [f"hold-{i:04d}" for i in range(args.companies)]
        open_companies(ledger, companies)
        ledger.close()
        if args.in_process:
            in_process(url, companies, args)
            return
        ports = [free_port() for _ in range(args.serve_processes)]
        service = start_service(url, ports[0], Path(logs), ports[1:])
        try:
            for port in ports:
                wait_ready(port)
            each = f"{args.connections} connections, {args.duration_s:.0f} s each"
            print(f"holds, open loop, {each}, {len(ports)} serve process(es):")
            runs = await measure(ports, companies, args)
        finally:
            stop_service(service)
    report(runs)


def report(runs: list[Run]) -> None:
    print("summary (each rate's healthz is its baseline):")
    for healthz, spread, hot in zip(runs[0::3], runs[1::3], runs[2::3], strict=True):
        floor = FLOORS_MS.get(spread.rate)
        verdict = ""
        if floor is not None:
            met = spread.errors == 0 and spread.pct(0.99) <= floor
            met = met and spread.achieved >= 0.98 * spread.rate
            verdict = f" (floor p99 <= {floor:.0f} ms, 0 errors, rate kept: " + (
                "MET)" if met else "MISSED)"
            )
        print(
            f"  {spread.rate:,.0f}/s: spread p50 {spread.pct(0.5):.2f} ms p99 "
            f"{spread.pct(0.99):.2f} ms errors {spread.errors} achieved {spread.achieved:,.0f}/s"
            f"{verdict}; hot p99 {hot.pct(0.99):.2f} ms errors {hot.errors}; healthz p99 "
            f"{healthz.pct(0.99):.2f} ms; spread/healthz p99 "
            f"{spread.pct(0.99) / healthz.pct(0.99):.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[500, 2000])
    parser.add_argument("--duration-s", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--companies", type=int, default=1000)
    parser.add_argument("--in-process", action="store_true", help="no HTTP: a batcher here")
    parser.add_argument("--serve-processes", type=int, default=1,
                        help="ledger serve replicas, the connections spread over them")  # fmt: skip
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
