"""The service's own processes under the soak: ``ledger consume`` x N, ``ledger project`` and
``ledger serve``, started from the virtualenv's ``ledger`` with a ``LEDGER_*`` environment,
killed on purpose by the fault schedule, and watched for exits nobody asked for.

A process that exits on its own (say, because the database went away) is restarted and counted
as an *extra* restart with its exit code and the end of its log: the soak reports it rather than
hiding it, since each role is meant to ride out outages by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

LEDGER = str(Path(sys.executable).parent / "ledger")
STOP_TIMEOUT_S = 30.0
WATCH_INTERVAL_S = 0.5
LOG_TAIL_CHARS = 1500


@dataclass(frozen=True)
class Exit:
    """An exit nobody asked for."""

    role: str
    at_s: float
    """Seconds since the soak started."""
    uptime_s: float
    """How long that process had been running: a few seconds means it died starting up."""
    code: int | None
    log_tail: str


@dataclass
class Role:
    """One long-running ``ledger`` process, restartable; its output appended to one log."""

    name: str
    command: str
    env: dict[str, str]
    log: Path
    clock_started: float = field(default_factory=time.monotonic)
    process: subprocess.Popen[bytes] | None = None
    wanted: bool = False
    """Should be running now: False while killed on purpose and not yet restarted."""
    starts: int = 0
    kills: int = 0
    started_at: float = 0.0
    ops_port: int | None = None
    """Where the role serves /metrics (LEDGER_OPS_PORT), if it does."""
    counted: dict[str, float] = field(default_factory=dict)
    """Counter totals of this role's earlier lives (a restart starts its counters at 0)."""
    last_seen: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        with self.log.open("ab") as out:  # the child keeps its own copy of the descriptor
            out.write(f"=== start {self.starts + 1} at +{self.elapsed():.1f}s ===\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                [LEDGER, self.command], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.starts += 1
        for name, value in self.last_seen.items():
            self.counted[name] = self.counted.get(name, 0.0) + value
        self.last_seen = {}
        self.started_at = time.monotonic()
        self.wanted = True

    def elapsed(self) -> float:
        return time.monotonic() - self.clock_started

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, whatever was in flight is cut off."""
        self.wanted = False
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)
            self.kills += 1

    def terminate(self) -> None:
        """Ask for a clean stop (SIGTERM); ``wait_stopped`` collects the exit code."""
        self.wanted = False
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self) -> int | None:
        """The exit code after ``terminate``; None when it outlived ``STOP_TIMEOUT_S`` and had
        to be killed."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)
            return None

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return ""


def counter_totals(metrics: str, names: tuple[str, ...]) -> dict[str, float]:
    """Each named counter summed over its label sets, from a Prometheus text exposition."""
    totals = dict.fromkeys(names, 0.0)
    for line in metrics.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals


@dataclass
class Fleet:
    """Every role of the run, and the exits nobody asked for."""

    roles: list[Role]
    unexpected: list[Exit] = field(default_factory=list)

    def by_prefix(self, prefix: str) -> list[Role]:
        return [role for role in self.roles if role.name.startswith(prefix)]

    def start_all(self) -> None:
        for role in self.roles:
            role.start()

    async def watch(self, stop: asyncio.Event) -> None:
        """Restart, and count, every wanted role that exited on its own."""
        while not stop.is_set():
            for role in self.roles:
                if role.wanted and role.process is not None and role.process.poll() is not None:
                    self._restart_exited(role)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WATCH_INTERVAL_S)

    def _restart_exited(self, role: Role) -> None:
        assert role.process is not None
        uptime_s = time.monotonic() - role.started_at
        code = role.process.returncode
        self.unexpected.append(Exit(role.name, role.elapsed(), uptime_s, code, role.tail()))
        print(
            f"  +{role.elapsed():5.0f}s ! {role.name} exited on its own (code {code}) after "
            f"{uptime_s:.0f}s; restarting it (log: {role.log})",
            flush=True,
        )
        role.start()

    def terminate_all(self) -> dict[str, int | None]:
        """SIGTERM every running role at once, then collect the exit codes."""
        for role in self.roles:
            role.terminate()
        return {role.name: role.wait_stopped() for role in self.roles}

    async def counters(self, prefix: str, names: tuple[str, ...]) -> dict[str, float]:
        """The named counters summed over the roles named ``prefix``* and over their lives (a
        life's last scrape is what it counted: a SIGKILLed life's final moments are lost)."""
        import httpx

        async with httpx.AsyncClient(timeout=2.0) as client:
            for role in self.by_prefix(prefix):
                if role.ops_port is None or not role.running:
                    continue
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"http://127.0.0.1:{role.ops_port}/metrics")
                    role.last_seen = counter_totals(response.text, names)
        totals = dict.fromkeys(names, 0.0)
        for role in self.by_prefix(prefix):
            for name in names:
                totals[name] += role.counted.get(name, 0.0) + role.last_seen.get(name, 0.0)
        return totals

    def kill_all(self) -> None:
        """The way out on failure or Ctrl-C: nothing of the run may outlive it."""
        for role in self.roles:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                role.kill()
