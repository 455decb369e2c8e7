"""make bench-ingest: end-to-end committed deductions/s and produce-to-commit latency.

Against a real PostgreSQL (fresh database) and the Tansu broker on loopback:

Each of ``BENCH_RUNS`` runs (default 3) takes a fresh database and measures:

1. spread: 1,000 companies x 3 senders; 200,000 events pre-produced by a separate
   `ledger publish-sample` process, then consumed by one consumer (exactly-once on: usage keys,
   positions and deductions in one transaction per partition batch). Throughput is measured
   from the first committed batch to the last.
2. hot pool: the same with one company and 3 senders (every event hits one wallet).
3. latency at 2,000 and 5,000 events/s (``BENCH_LATENCY_RATES``): events published at a fixed
   rate by a separate process while a freshly started consumer runs; latency = commit time -
   the record's Kafka timestamp (set by the producer at send). The first ``WARMUP_SECONDS`` are
   reported apart: the consumer is loading every wallet it meets.
4. projection lag at 5,000/s: a `ledger project` process, caught up first, follows the store
   during the 5,000/s scenario; commit -> read model is sampled from outside
   (``bench/projection_lag.py``).

The figures are printed per run, then as medians against the floors of issue #16
(``bench/ingest_figures.py``).

Baseline in the same run: raw batched INSERT rows/s (1,000 rows per transaction) of rows
shaped like the stored events, into the same PostgreSQL.

`BENCH_ALERTS_AB=1` runs instead the spread scenario alternately without wallet policies and
with policies that make every wallet raise alerts during the run (low balance, rapid burn, a
spending cap, an auto top-up trigger) while the notification relay publishes them to the broker
from the same process, as `ledger run` does; `BENCH_ROUNDS` rounds (default 2).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg

from bench.bench_core import raw_round
from bench.common import fresh_database
from bench.ingest_figures import Figures, percentile
from bench.projection_lag import ProjectionWatch, start_projector, stop_projector, wait_caught_up
from ledger_service.bootstrap import bootstrap, build_consumer, build_ledger, build_relay
from ledger_service.config import Settings
from ledger_service.embedded import start_embedded_broker
from ledger_service.gc_tuning import tune_garbage_collector
from ledger_service.ingestion.batch import BatchOutcome
from ledger_service.ingestion.records import Consumed
from ledger_service.ingestion.sample import SampleShape, setup_wallets
from ledger_service.ingestion.topics import ensure_topics
from ledger_service.service.ledger import LedgerApplication

EVENTS = int(os.environ.get("BENCH_EVENTS", "200000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
LATENCY_RATES = [int(r) for r in os.environ.get("BENCH_LATENCY_RATES", "2000,5000").split(",")]
PROJECTION_RATE = 5000
LATENCY_SECONDS = int(os.environ.get("BENCH_LATENCY_SECONDS", "20"))
WARMUP_SECONDS = int(os.environ.get("BENCH_WARMUP_SECONDS", "10"))
PARTITIONS = 6
LEDGER = str(Path(sys.executable).parent / "ledger")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def publisher(
    env: dict[str, str], shape: SampleShape, events: int, rate: int = 0
) -> subprocess.Popen[bytes]:
    args = [
        LEDGER,
        "publish-sample",
        "--no-setup",
        "--companies",
        str(shape.companies),
        "--senders-per-company",
        str(shape.senders_per_company),
        "--events",
        str(events),
        "--rate",
        str(rate),
        "--seed",
        "1",
    ]
    if shape.prefix != "sample":
        raise ValueError("publish-sample publishes the 'sample' shape only")
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)


class Clock:
    def __init__(self) -> None:
        self.commits: list[tuple[float, int]] = []
        self.cpu: list[float] = []
        """The process's CPU time (all threads) at each commit."""
        self.latencies_ms: list[float] = []
        self.timestamps_ms: list[int] = []

    def on_committed(self, records: Sequence[Consumed], outcome: BatchOutcome) -> None:
        now = time.time()
        self.commits.append((time.perf_counter(), len(records)))
        self.cpu.append(time.process_time())
        self.latencies_ms.extend(now * 1000 - r.timestamp_ms for r in records)
        self.timestamps_ms.extend(r.timestamp_ms for r in records)

    @property
    def consumed(self) -> int:
        return sum(n for _, n in self.commits)

    def rate(self) -> float:
        (first, first_n), (last, _) = self.commits[0], self.commits[-1]
        return (self.consumed - first_n) / (last - first)

    def cores(self) -> float:
        """CPU time over wall time between the first commit and the last (the window of
        ``rate``): 1.0 is one core busy all the time."""
        (first, _), (last, _) = self.commits[0], self.commits[-1]
        return (self.cpu[-1] - self.cpu[0]) / (last - first)


async def consume(
    settings: Settings, expected: int, clock: Clock, timeout_s: float, relay: bool = False
) -> None:
    container = bootstrap(settings, with_broker=True)
    consumer, _ = build_consumer(container, on_committed=clock.on_committed)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    relaying = asyncio.create_task(build_relay(container).run(stop)) if relay else None
    deadline = time.monotonic() + timeout_s
    try:
        while clock.consumed < expected and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        if relaying is not None:
            await relaying
        container.close()
    if clock.consumed < expected:
        raise RuntimeError(f"consumed {clock.consumed} of {expected} within {timeout_s}s")


def scenario_settings(url: str, kafka: str, name: str) -> Settings:
    return Settings(
        environment="test",
        database_url=url,
        kafka_bootstrap=kafka,
        usage_topic=f"bench-usage-{name}",
        dlq_topic=f"bench-dlq-{name}",
        consumer_group=f"bench-{name}",
        notifications_topic=f"bench-notifications-{name}",
        batch_size_max=2000,
        log_level="warning",
    )


def environment(settings: Settings) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")},
        "LEDGER_DATABASE_URL": settings.database_url or "",
        "LEDGER_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "LEDGER_USAGE_TOPIC": settings.usage_topic,
        "LEDGER_LOG_LEVEL": "warning",
    }


def throughput(
    url: str, kafka: str, name: str, shape: SampleShape, relay: bool = False
) -> tuple[float, int, float]:
    """(deductions/s, usage keys recorded, the consumer process's CPU in cores)."""
    settings = scenario_settings(url, kafka, name)
    topics = {settings.usage_topic: PARTITIONS, settings.dlq_topic: 1}
    if relay:
        topics[settings.notifications_topic] = PARTITIONS
    asyncio.run(ensure_topics(kafka, topics))
    publish = publisher(environment(settings), shape, EVENTS)
    if publish.wait() != 0:
        raise RuntimeError("publish-sample failed")
    clock = Clock()
    asyncio.run(consume(settings, EVENTS, clock, timeout_s=600, relay=relay))
    with psycopg.connect(url) as conn:
        keys = conn.execute("SELECT count(*) FROM ledger_usage_keys").fetchone()
    return clock.rate(), int(keys[0]) if keys else 0, clock.cores()


def latency(
    url: str, kafka: str, shape: SampleShape, *, rate: int, name: str, watch_url: str | None = None
) -> tuple[list[float], list[float], list[float]]:
    """(cold, steady, projection): latencies of events sent in the first WARMUP_SECONDS (the
    consumer is loading every wallet it meets), of those sent after, and with ``watch_url``
    the commit -> read model lags of the steady part."""
    settings = scenario_settings(url, kafka, name)
    asyncio.run(ensure_topics(kafka, {settings.usage_topic: PARTITIONS, settings.dlq_topic: 1}))
    total = rate * (WARMUP_SECONDS + LATENCY_SECONDS)
    clock = Clock()
    sent_from: list[float] = []
    watch = ProjectionWatch(watch_url or url)

    async def run() -> None:
        consuming = asyncio.create_task(consume(settings, total, clock, timeout_s=300))
        await asyncio.sleep(8)  # let the consumer join its group first
        sent_from.append(time.time() * 1000)
        publish = publisher(environment(settings), shape, total, rate=rate)
        await consuming
        publish.wait()

    if watch_url is None:
        asyncio.run(run())
    else:
        with watch:
            asyncio.run(run())
            wait_caught_up(watch_url)  # every commit of the run gets its projected sample
    steady_from = sent_from[0] + (WARMUP_SECONDS + 1) * 1000  # +1 s: publisher start-up
    cold = [
        lat
        for lat, ts in zip(clock.latencies_ms, clock.timestamps_ms, strict=True)
        if ts < steady_from
    ]
    steady = [
        lat
        for lat, ts in zip(clock.latencies_ms, clock.timestamps_ms, strict=True)
        if ts >= steady_from
    ]
    lags = watch.lags_ms(since=steady_from / 1000) if watch_url is not None else []
    return cold, steady, lags


def alerting_policies(ledger: LedgerApplication, shape: SampleShape) -> None:
    """Policies under which every wallet alerts during the run (200 events per wallet)."""
    for i in range(shape.companies):
        ledger.configure_wallet(
            company_id=shape.company(i),
            alerts={"low_balance_threshold": "995", "burn_limit_24h": "2"},
            spending_caps={"marketing": {"units": 20}},
            auto_topup={"trigger_balance": "990", "amount": "100"},
            actor="bench",
            idempotency_key="bench-policies",
        )


def alerts_ab() -> None:
    rounds = int(os.environ.get("BENCH_ROUNDS", "2"))
    shape = SampleShape(1000, 3)
    rates: dict[str, list[float]] = {"off": [], "on": []}
    raws: list[float] = []
    kafka, stop_broker = start_embedded_broker(free_port())
    try:
        for round_ in range(rounds):
            for mode in ("off", "on"):
                with fresh_database() as url:
                    ledger = build_ledger(Settings(environment="test"), url)
                    setup_wallets(ledger, shape)
                    if mode == "on":
                        alerting_policies(ledger, shape)
                    ledger.close()
                    name = f"ab-{mode}-{round_}"
                    rate, _, _ = throughput(url, kafka, name, shape, relay=mode == "on")
                    rates[mode].append(rate)
                    raws.append(raw_round(url, 1000, 50_000, b"x" * 600))
                    alerts = count_alerts(url) if mode == "on" else 0
                print(
                    f"round {round_ + 1} alerts {mode:<3}: {rate:,.0f} deductions/s "
                    f"(alert events raised: {alerts:,})",
                    flush=True,
                )
    finally:
        stop_broker()
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    raw = statistics.median(raws)
    print(f"spread, alerts off: median {off:,.0f} deductions/s ({_runs(rates['off'])})")
    print(f"spread, alerts on:  median {on:,.0f} deductions/s ({_runs(rates['on'])})")
    print(f"baseline raw batched INSERT (1000 rows/tx, 600-byte rows): median {raw:,.0f} rows/s")
    print(f"alerts on / off: {on / off:.2f} (floor: lose no more than 15%, i.e. >= 0.85)")


def count_alerts(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ledger_events WHERE topic LIKE %s",
            ("%Wallet.AlertRaised",),
        ).fetchone()
    return int(row[0]) if row else 0


def _runs(values: list[float]) -> str:
    return "runs: " + ", ".join(f"{v:,.0f}" for v in values)


def main() -> None:
    # The consumer runs in this process: collect garbage as `ledger consume` does.
    tune_garbage_collector(Settings().gc_gen0_threshold)
    if os.environ.get("BENCH_ALERTS_AB") == "1":
        alerts_ab()
        return
    print(
        f"bench-ingest: {RUNS} runs; {EVENTS} events per throughput scenario, {PARTITIONS} "
        f"partitions, one consumer, exactly-once on; latency at {LATENCY_RATES} events/s "
        f"({WARMUP_SECONDS}s after a consumer start, then {LATENCY_SECONDS}s steady)",
        flush=True,
    )
    figures = Figures()
    kafka, stop_broker = start_embedded_broker(free_port())
    try:
        for index in range(RUNS):
            one_run(kafka, index, figures)
    finally:
        stop_broker()
    figures.report()


def one_run(kafka: str, index: int, figures: Figures) -> None:
    """Every scenario once, on a database of its own, with its raw INSERT baseline."""
    with fresh_database() as url:
        ledger = build_ledger(Settings(environment="test"), url)
        started = time.perf_counter()
        setup_wallets(ledger, SampleShape(1000, 3))
        ledger.close()
        print(f"run {index + 1}: setup 1000 wallets x 3 senders in "
              f"{time.perf_counter() - started:.0f}s", flush=True)  # fmt: skip
        spread, keys, cores = throughput(url, kafka, f"spread-{index}", SampleShape(1000, 3))
        if keys != EVENTS:
            raise RuntimeError(f"{keys} usage keys recorded for {EVENTS} events")
        figures.add("spread", spread)
        figures.add("spread cores", cores)
        figures.add("raw", raw_round(url, 1000, 50_000, b"x" * 600))
        figures.add("hot", hot_pool(kafka, index))
        for rate in LATENCY_RATES:
            measure_latency(url, kafka, index, rate, figures)
        figures.print_run(index)


def measure_latency(url: str, kafka: str, index: int, rate: int, figures: Figures) -> None:
    """The latency scenario at ``rate``; the one at PROJECTION_RATE with `ledger project`
    running, caught up with everything before it, to measure commit -> read model."""
    shape = SampleShape(1000, 3)
    name = f"latency-{rate}-{index}"
    if rate != PROJECTION_RATE:
        cold, steady, _ = latency(url, kafka, shape, rate=rate, name=name)
    else:
        projector = start_projector(environment(scenario_settings(url, kafka, name)))
        try:
            wait_caught_up(url)
            cold, steady, lags = latency(url, kafka, shape, rate=rate, name=name, watch_url=url)
        finally:
            stop_projector(projector)
        figures.add(f"projection p99 {rate}", percentile(lags, 99))
    figures.add(f"steady p99 {rate}", percentile(steady, 99))
    figures.add(f"steady p50 {rate}", percentile(steady, 50))
    figures.add(f"cold p99 {rate}", percentile(cold, 99))


def hot_pool(kafka: str, index: int) -> float:
    """One company, three senders: in a database of its own so 'sample-00000' is the only
    company (publish-sample draws companies from the same prefix)."""
    with fresh_database() as hot_url:
        ledger = build_ledger(Settings(environment="test"), hot_url)
        setup_wallets(ledger, SampleShape(1, 3))
        ledger.close()
        rate, _, _ = throughput(hot_url, kafka, f"hot-{index}", SampleShape(1, 3))
    return rate


if __name__ == "__main__":
    main()
