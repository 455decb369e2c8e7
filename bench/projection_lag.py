"""Commit -> read model lag, watched from outside: a `ledger project` process and a poller.

The poller reads, every ``POLL_S``, the newest committed notification id and the projection's
recorded position (both in one statement, so one snapshot). A commit seen at sample i is
projected at the first later sample whose position reaches it; the lag is the time between the
two samples, so each figure is exact to about one poll interval (it can read up to ``POLL_S``
low or high; the benchmark prints the interval next to the figure).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from projections.tables import DEFAULT_SCHEMA, PROJECTION_NAME

POLL_S = 0.02
LEDGER = str(Path(sys.executable).parent / "ledger")
SNAPSHOT = (
    "SELECT (SELECT coalesce(max(notification_id), 0) FROM ledger_events), "
    f"(SELECT position FROM {DEFAULT_SCHEMA}.rm_projection_positions WHERE name = %s)"
)


def start_projector(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([LEDGER, "project"], env=env, stdout=subprocess.DEVNULL)


def stop_projector(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_caught_up(url: str, timeout_s: float = 300.0) -> float:
    """Seconds until the projection's position reaches the newest committed event."""
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() - started < timeout_s:
            try:
                row = conn.execute(SNAPSHOT, (PROJECTION_NAME,)).fetchone()
            except psycopg.errors.UndefinedTable:
                row = None  # the projector has not created its tables yet
            if row is not None and row[1] is not None and row[1] >= row[0]:
                return time.monotonic() - started
            time.sleep(0.2)
    raise RuntimeError(f"the projector did not catch up within {timeout_s:.0f}s")


class ProjectionWatch:
    """Samples (time, newest commit, projected position) in a thread until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="projection-watch", daemon=True)

    def __enter__(self) -> ProjectionWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(SNAPSHOT, (PROJECTION_NAME,)).fetchone()
                if row is not None:
                    self.samples.append((time.time(), int(row[0]), int(row[1] or 0)))
                self._stop.wait(POLL_S)

    def lags_ms(self, since: float) -> list[float]:
        """The lag of every sampled commit at or after ``since`` (epoch s) that was projected
        before the watch stopped; a commit not yet projected at the end is reported apart
        by ``unprojected``."""
        lags: list[float] = []
        j = 0
        samples = self.samples
        for i, (seen_at, committed, _) in enumerate(samples):
            if seen_at < since:
                continue
            j = max(j, i)
            while j < len(samples) and samples[j][2] < committed:
                j += 1
            if j == len(samples):
                break
            lags.append((samples[j][0] - seen_at) * 1000)
        return lags

    def unprojected(self) -> int:
        """Events committed but not projected at the last sample."""
        if not self.samples:
            return 0
        _, committed, projected = self.samples[-1]
        return max(committed - projected, 0)
