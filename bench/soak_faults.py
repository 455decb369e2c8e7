"""The fault schedule: consumer SIGKILLs, PostgreSQL restarts (fast and immediate, in turn)
and projector SIGKILLs at seeded random moments over the ingest window, and what was done.

Killed processes come back after a short random delay, as an orchestrator would bring them
back; the soak restarts them itself so that the kill count is exactly what it says.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from bench.soak_postgres import PrivatePostgres
from bench.soak_processes import Fleet, Role

CONSUMER = "consumer"
PROJECTOR = "projector"
PG_FAST = "pg-fast"
PG_IMMEDIATE = "pg-immediate"
WINDOW_START, WINDOW_END = 0.05, 0.9
"""Faults fall in this fraction of the planned publishing time: after the consumers got going,
and early enough that the last restarted process still has work to do."""


@dataclass(frozen=True, order=True)
class Fault:
    at_s: float
    kind: str


def plan(
    rng: random.Random,
    window_s: float,
    *,
    consumer_kills: int,
    pg_restarts: int,
    projector_restarts: int,
) -> list[Fault]:
    def moments(count: int) -> list[float]:
        return [rng.uniform(WINDOW_START, WINDOW_END) * window_s for _ in range(count)]

    pg_modes = [PG_FAST if i % 2 == 0 else PG_IMMEDIATE for i in range(pg_restarts)]
    faults = [Fault(at, CONSUMER) for at in moments(consumer_kills)]
    faults += [Fault(at, PROJECTOR) for at in moments(projector_restarts)]
    faults += [Fault(at, mode) for at, mode in zip(moments(pg_restarts), pg_modes, strict=True)]
    return sorted(faults)


@dataclass
class FaultLog:
    origin: float
    """The soak's start: times are printed from it, as the progress lines are."""
    performed: list[tuple[float, str, str]] = field(default_factory=list)
    """(seconds since the soak started, kind, detail)."""
    pg_down_s: float = 0.0

    def count(self, kind: str) -> int:
        return sum(1 for _, done, _ in self.performed if done == kind)

    def note(self, kind: str, detail: str, *, at: float | None = None) -> None:
        at_s = (time.monotonic() if at is None else at) - self.origin
        self.performed.append((at_s, kind, detail))
        print(f"  +{at_s:5.0f}s fault {kind:<12} {detail}", flush=True)


class FaultRunner:
    def __init__(
        self, fleet: Fleet, pg: PrivatePostgres, rng: random.Random, log: FaultLog
    ) -> None:
        self.fleet, self.pg, self.rng, self.log = fleet, pg, rng, log
        self.restarts: set[asyncio.Task[None]] = set()
        """Killed processes coming back and PostgreSQL restarts under way."""
        self.pg_lock = asyncio.Lock()

    async def run(self, faults: list[Fault], started_at: float) -> None:
        """Each fault at its moment (a kill waits for a running process to kill); returns
        when every fault is done, every killed process is back and PostgreSQL is up."""
        try:
            await self._strike(faults, started_at)
            await asyncio.gather(*self.restarts)
        finally:  # cancelled (timeout, Ctrl-C): nothing may come back after the cleanup
            for task in self.restarts:
                task.cancel()

    async def _strike(self, faults: list[Fault], started_at: float) -> None:
        for fault in faults:
            delay = started_at + fault.at_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if fault.kind in (CONSUMER, PROJECTOR):
                role = await self._running(self.fleet.by_prefix(fault.kind))
                if role is None:
                    self.log.note("skipped", f"{fault.kind}: none running for 30s")
                    continue
                back_max_s = 5.0 if fault.kind == CONSUMER else 3.0
                self._kill(role, fault.kind, back_max_s)
            else:  # in the background: other faults may strike while it is down
                self._track(asyncio.create_task(self._restart_postgres(fault.kind)))

    async def _running(self, roles: list[Role]) -> Role | None:
        """One of ``roles`` that is running now, waiting a little when all are down (each
        killed process comes back exactly once, so a down one is never killed again)."""
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            running = [role for role in roles if role.running and role.wanted]
            if running:
                return self.rng.choice(running)
            await asyncio.sleep(0.2)
        return None

    def _kill(self, role: Role, kind: str, back_max_s: float) -> None:
        pid = role.process.pid if role.process is not None else None
        role.kill()
        back_s = self.rng.uniform(0.5, back_max_s)
        self.log.note(kind, f"SIGKILL {role.name} (pid {pid}), back in {back_s:.1f}s")
        self._track(asyncio.create_task(self._start_later(role, back_s)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self.restarts.add(task)
        task.add_done_callback(self.restarts.discard)

    async def _start_later(self, role: Role, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        role.start()

    async def _restart_postgres(self, kind: str) -> None:
        mode = "fast" if kind == PG_FAST else "immediate"
        down_s = self.rng.uniform(1.0, 5.0)
        async with self.pg_lock:  # one restart at a time: the next waits for the server
            started = time.monotonic()
            await asyncio.to_thread(self.pg.restart, mode, down_s)
        took_s = time.monotonic() - started
        self.log.pg_down_s += took_s
        detail = f"pg_ctl stop -m {mode}, down {down_s:.1f}s, back after {took_s:.1f}s"
        self.log.note(kind, detail, at=started)
