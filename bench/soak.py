"""make soak: the whole service under faults, checked against the soak's own reference.

A private PostgreSQL (``bench.soak_postgres``) and the embedded broker on loopback; the
service's own processes - ``ledger consume`` x N in one group, ``ledger project``, ``ledger
serve`` - started from the virtualenv. Wallets are opened and funded through the API; then
usage events are published at a steady rate (with verbatim and republished duplicates and a
few poison records) while top-ups and transfers go through the API and the fault schedule
SIGKILLs consumers and the projector and restarts PostgreSQL (fast and immediate). At the end:
nothing lost, nothing applied twice, every balance equal to the reference, ``ledger verify``
clean, ``ledger replay --all`` equal to the live read models, and only the poison
dead-lettered. Bounded by ``--timeout-s``; exits non-zero when any check fails.

    python -m bench.soak [--events N] [--wallets N] [--consumers N] [--seed N] ...
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import soak_checks as checks
from bench.bench_ingest import free_port
from bench.soak_api import Api, ApiStats, money_movements, open_and_fund
from bench.soak_faults import FaultLog, FaultRunner, plan
from bench.soak_postgres import PrivatePostgres
from bench.soak_processes import Fleet, Role
from bench.soak_report import Outcome, print_report
from bench.soak_workload import (
    SOURCE,
    Published,
    Reference,
    UsageStream,
    make_companies,
    publish,
)
from ledger_service.api.auth import mint_token
from ledger_service.embedded import start_embedded_broker
from ledger_service.ingestion.topics import ensure_topics

CONSUMER_COUNTERS = (
    "ledger_ingestion_conflict_retries_total",
    "ledger_ingestion_batch_seconds_count",
)
USAGE_TOPIC = "soak.usage.v1"
DLQ_TOPIC = "soak.usage.dlq.v1"
PROGRESS_EVERY_S = 30.0
SCRAPE_EVERY_S = 2.0
API_READY_TIMEOUT_S = 60.0
CATCH_UP_POLL_S = 1.0
ONE_SHOT_TIMEOUT_S = 1800.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=summary)
    add = parser.add_argument
    add("--events", type=int, default=1_000_000, help="unique usage events to publish")
    add("--wallets", type=int, default=1_000, help="companies, one shared wallet each")
    add("--consumers", type=int, default=3, help="`ledger consume` processes in one group")
    add("--partitions", type=int, default=6, help="partitions of the usage topic")
    add("--rate", type=float, default=1_500, help="records published per second")
    add("--duplicates-pct", type=float, default=10, help="percent of usage records repeated")
    add("--poison", type=int, default=50, help="records injected to be dead-lettered")
    add("--consumer-kills", type=int, default=24, help="SIGKILLs of a consumer")
    add("--pg-restarts", type=int, default=4, help="PostgreSQL restarts, fast and immediate")
    add("--projector-restarts", type=int, default=4, help="SIGKILLs of the projector")
    add("--api-ops-per-s", type=float, default=2, help="top-ups + transfers per second")
    add("--timeout-s", type=float, default=3_600, help="hard bound on the whole run")
    add("--seed", type=int, default=17)
    add("--keep", action="store_true", help="keep the run directory (logs) even on success")
    options = parser.parse_args(argv)
    if not 0 <= options.duplicates_pct < 100:
        parser.error("--duplicates-pct is a percentage below 100")
    if options.events < 1 or options.wallets < 2 or options.consumers < 1 or options.rate <= 0:
        parser.error(
            "needs --events >= 1, --wallets >= 2 (transfers), --consumers >= 1, --rate > 0"
        )
    return options


class Soak:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.started = time.monotonic()
        self.run_dir = Path(tempfile.mkdtemp(prefix="ledger-soak-"))
        self.run_dir.chmod(0o755)  # the private PostgreSQL runs as another user under root
        self.pg = PrivatePostgres(self.run_dir / "pg", free_port())
        self.stop_broker: list[Callable[[], None]] = []
        self.bootstrap = ""
        self.fleet = Fleet([])
        self.companies = make_companies(options.wallets)
        self.reference = Reference()
        self.stream = UsageStream(
            self.companies,
            unique=options.events,
            duplicates_pct=options.duplicates_pct,
            poison=options.poison,
            seed=options.seed,
            reference=self.reference,
        )
        self.published = Published()
        self.api_stats = ApiStats()
        self.faults = FaultLog(self.started)
        self.outcome = Outcome(run_dir=self.run_dir)
        self.url = ""
        self.env: dict[str, str] = {}

    # -- infrastructure -------------------------------------------------------------------

    async def start_infrastructure(self) -> None:
        self.pg.init()
        self.pg.start()
        self.url = self.pg.create_database("ledger")
        bootstrap, stop = start_embedded_broker(free_port())
        self.stop_broker.append(stop)
        await ensure_topics(bootstrap, {USAGE_TOPIC: self.options.partitions, DLQ_TOPIC: 1})
        self.bootstrap = bootstrap
        self.env = self._environment()
        code, output = await checks.run_ledger(self.env, "migrate", timeout_s=300)
        if code != 0:
            raise RuntimeError(f"ledger migrate failed: {output}")

    def _environment(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        return inherited | {
            "LEDGER_ENVIRONMENT": "test",
            "LEDGER_DATABASE_URL": self.url,
            "LEDGER_KAFKA_BOOTSTRAP": self.bootstrap,
            "LEDGER_USAGE_TOPIC": USAGE_TOPIC,
            "LEDGER_DLQ_TOPIC": DLQ_TOPIC,
            "LEDGER_CONSUMER_GROUP": "soak-ingestion",
            # As in production: `ledger migrate` ran once; the roles only check the version.
            "LEDGER_MIGRATE_ON_START": "false",
            "LEDGER_JWT_SECRET": secrets.token_hex(32),
            "LEDGER_PAYMENTS_PROVIDER": "none",
            "LEDGER_LOG_JSON": "true",
            "LEDGER_LOG_LEVEL": "info",
        }

    def build_fleet(self) -> Role:
        logs = self.run_dir / "logs"
        logs.mkdir()
        self.api_port = free_port()
        roles = []
        for i in range(self.options.consumers):
            port = free_port()
            env = self.env | {"LEDGER_OPS_PORT": str(port)}
            name = f"consumer-{i + 1}"
            roles.append(Role(name, "consume", env, logs / f"{name}.log", ops_port=port))
        roles.append(Role("projector", "project", self.env, logs / "projector.log"))
        api = Role("api", "serve", self.env | {"LEDGER_HTTP_PORT": str(self.api_port)},
                   logs / "api.log")  # fmt: skip
        roles.append(api)
        for role in roles:
            role.clock_started = self.started
        self.fleet = Fleet(roles)
        return api

    def api_client(self, deadline: float) -> Api:
        token = mint_token(
            self.env["LEDGER_JWT_SECRET"], subject="soak-operator", company_id=None,
            scopes=["billing.manage"], ttl_s=int(self.options.timeout_s) + 600,
        )  # fmt: skip
        return Api(f"http://127.0.0.1:{self.api_port}", token, deadline, self.api_stats)

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> None:
        deadline = self.started + self.options.timeout_s
        print(f"soak: run directory {self.run_dir} (logs/ has each process's log)", flush=True)
        self.outcome.load_at_start = os.getloadavg()[0]
        await self.start_infrastructure()
        self.build_fleet()
        self.fleet.start_all()
        stop_watch = asyncio.Event()
        watching = asyncio.create_task(self.fleet.watch(stop_watch))
        api = self.api_client(deadline)
        try:
            await self._wait_api(api)
            setup_started = time.monotonic()
            await open_and_fund(api, self.companies, self.reference)
            self.outcome.setup_s = time.monotonic() - setup_started
            print(f"setup: {len(self.companies):,} wallets opened and funded through the API "
                  f"in {self.outcome.setup_s:.0f}s", flush=True)  # fmt: skip
            await self._ingest(api)
            await self._wait_projection()
        finally:
            stop_watch.set()
            await watching
            await api.close()
        self.outcome.exit_codes = self.fleet.terminate_all()
        await self._final_checks()

    async def _wait_api(self, api: Api) -> None:
        deadline = time.monotonic() + API_READY_TIMEOUT_S
        while not await api.healthy():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not come up: {self.fleet.roles[-1].tail()}")
            await asyncio.sleep(0.2)

    async def _ingest(self, api: Api) -> None:
        options = self.options
        rng = random.Random(options.seed)
        window_s = self.stream.planned.records / options.rate
        schedule = plan(
            rng, window_s, consumer_kills=options.consumer_kills,
            pg_restarts=options.pg_restarts, projector_restarts=options.projector_restarts,
        )  # fmt: skip
        print(f"ingest: {self.stream.planned.records:,} records at {options.rate:,.0f}/s "
              f"(~{window_s:.0f}s), {len(schedule)} faults planned", flush=True)  # fmt: skip
        stop_money = asyncio.Event()
        publishing = asyncio.create_task(
            publish(self.bootstrap, USAGE_TOPIC, self.stream, options.rate, self.published)
        )
        runner = FaultRunner(self.fleet, self.pg, rng, self.faults)
        faults = asyncio.create_task(runner.run(schedule, time.monotonic()))
        money = asyncio.create_task(
            money_movements(
                api, self.companies, self.reference, ops_per_s=options.api_ops_per_s,
                workers=4, seed=options.seed + 1, stop=stop_money,
            )
        )  # fmt: skip
        progress = asyncio.create_task(self._progress())
        scraping = asyncio.create_task(self._scrape())
        try:
            await publishing
            await faults  # every fault done and every killed process back
            await self._wait_caught_up()
            assert self.published.started_at is not None
            self.outcome.ingest_s = time.monotonic() - self.published.started_at
            self.outcome.counters = await self.fleet.counters("consumer", CONSUMER_COUNTERS)
        finally:
            stop_money.set()
            progress.cancel()
            scraping.cancel()
            faults.cancel()
            await money

    async def _wait_caught_up(self) -> None:
        """Until every partition's recorded position reaches the end of what was published."""
        while True:
            positions = await asyncio.to_thread(checks.consumed_positions, self.url, USAGE_TOPIC)
            if checks.behind(self.published.ends, positions) == 0:
                return
            await asyncio.sleep(CATCH_UP_POLL_S)

    async def _wait_projection(self) -> None:
        while await asyncio.to_thread(checks.projection_lag, self.url) > 0:
            await asyncio.sleep(CATCH_UP_POLL_S)

    async def _scrape(self) -> None:
        """The consumers' counters, often: what a life counted after its last scrape is lost
        when it is SIGKILLed."""
        while True:
            await asyncio.sleep(SCRAPE_EVERY_S)
            await self.fleet.counters("consumer", CONSUMER_COUNTERS)

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            positions = await asyncio.to_thread(checks.consumed_positions, self.url, USAGE_TOPIC)
            keys = await asyncio.to_thread(checks.usage_keys, self.url, SOURCE)
            counters = await self.fleet.counters("consumer", CONSUMER_COUNTERS)
            conflicts, batches = (int(counters[name]) for name in CONSUMER_COUNTERS)
            print(
                f"  +{time.monotonic() - self.started:5.0f}s published "
                f"{self.published.acknowledged:,}/{self.stream.planned.records:,}, behind "
                f"{checks.behind(self.published.ends, positions):,}, usage keys {keys:,}, "
                f"batches {batches:,} (conflict retries {conflicts:,}), top-ups "
                f"{self.api_stats.topups:,}, transfers {self.api_stats.transfers:,}, faults "
                f"{len(self.faults.performed)}",
                flush=True,
            )

    # -- the end --------------------------------------------------------------------------

    async def _final_checks(self) -> None:
        out = self.outcome
        code, output = await checks.run_ledger(self.env, "verify", timeout_s=ONE_SHOT_TIMEOUT_S)
        out.verify = (code, output)
        await asyncio.to_thread(checks.keep_live_read_models, self.url)
        code, output = await checks.run_ledger(
            self.env, "replay", "--all", timeout_s=ONE_SHOT_TIMEOUT_S
        )
        out.replay = (code, output)
        out.replay_differences = await asyncio.to_thread(checks.replay_differences, self.url)
        out.usage_keys = await asyncio.to_thread(checks.usage_keys, self.url, SOURCE)
        out.usage_debits = await asyncio.to_thread(checks.usage_debits, self.url, SOURCE)
        ids = [company.id for company in self.companies]
        out.balances = await asyncio.to_thread(checks.wallet_balances, self.url, ids)
        out.dead_letters = await checks.dead_letters(self.bootstrap, DLQ_TOPIC)

    def cleanup(self, keep_logs: bool) -> None:
        self.fleet.kill_all()
        for stop in self.stop_broker:
            stop()
        self.pg.destroy()
        if keep_logs:
            print(f"logs kept in {self.run_dir} (processes: {self.run_dir / 'logs'}, "
                  f"PostgreSQL: {self.pg.log_file})")  # fmt: skip
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)


async def soak(options: argparse.Namespace) -> int:
    run = Soak(options)
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    failed = True
    try:
        try:
            await asyncio.wait_for(run.run(), options.timeout_s)
        except TimeoutError:
            run.outcome.timed_out = True
        except Exception as exc:  # report what was measured, then fail
            traceback.print_exc()
            run.outcome.error = f"{type(exc).__name__}: {exc}"[:2000]
        except asyncio.CancelledError:  # Ctrl-C or SIGTERM: what was measured, then out
            run.outcome.error = "interrupted (Ctrl-C or SIGTERM)"
            run.outcome.wall_s = time.monotonic() - run.started
            print_report(run, options)
            raise
        run.outcome.wall_s = time.monotonic() - run.started
        failed = not print_report(run, options)
        return 1 if failed else 0
    finally:
        run.cleanup(keep_logs=failed or options.keep)


def main() -> None:
    options = parse_args()
    try:
        sys.exit(asyncio.run(soak(options)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit(130)


if __name__ == "__main__":
    main()
