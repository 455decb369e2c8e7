"""Runs the service's long-lived parts in one asyncio loop and stops them together.

The runner owns SIGINT/SIGTERM: on the first signal every part is asked to finish what it has in
flight (HTTP requests drain; the consumer finishes its batch and leaves its group) and the
process exits 0, within ``LEDGER_SHUTDOWN_TIMEOUT_S``: a part still running then is cancelled
and the process exits non-zero (``shutdown_timed_out``).

A part that raises is handled one of two ways, chosen per part by ``cli/run.py``:

* the log followers (projections, notification relay, auto top-up, billing cycles) are wrapped
  in ``restarting``: a crash is logged at error level with its traceback and the part restarts
  after a back-off that doubles up to a minute. They only ever lag - they catch up from their
  tracked positions - so one of them failing must not stop deductions (the consumer) or reads
  (HTTP). Their expected outages (database, broker) never reach here: their loop waits them
  out (``ledger_service.follow``). A bug that recurs is logged on every restart, loudly.
* the HTTP server and the usage consumer are not: if one of them fails, the process stops with
  the error (non-zero exit), because a service that cannot serve or ingest must be restarted by
  its supervisor (systemd, Kubernetes), not look healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI

from ledger_service.follow import pause

log = structlog.get_logger(__name__)

SHUTDOWN_TIMEOUT_S = 20.0
"""How long the parts get to finish after a stop signal (Kubernetes waits 30 s by default)."""
StopSignal = asyncio.Event
Worker = Callable[[StopSignal], Coroutine[Any, Any, None]]


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: the runner decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(app: FastAPI, host: str, port: int, stop: StopSignal) -> None:
    server = _HttpServer(
        uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    stop_wait = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    await task
    stop_wait.cancel()
    if not stop.is_set():
        # The server ended on its own (e.g. the port was taken): stop everything else too.
        stop.set()
        if not server.started:
            raise RuntimeError(f"HTTP server could not start on {host}:{port}")


async def run_until_signalled(
    workers: dict[str, Worker], *, shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S
) -> None:
    """Run every worker until a signal (or one worker's end) asks all of them to stop; then
    give them ``shutdown_timeout_s`` to finish what is in flight. A part still running then is
    cancelled (a consumer's batch is one transaction: cancelled, it wrote nothing) and the
    process fails, so that a stop that hangs is seen."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _on_signal, stop, sig)
    tasks = {asyncio.create_task(worker(stop), name=name): name for name, worker in workers.items()}
    log.info("service_started", parts=sorted(workers))

    async def stop_when_one_fails_or_all_end() -> None:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stop.set()

    watcher = asyncio.create_task(stop_when_one_fails_or_all_end())
    try:
        await stop.wait()
        _, stuck = await asyncio.wait(tasks, timeout=shutdown_timeout_s)
        for task in stuck:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        watcher.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if stuck:
        parts = sorted(tasks[t] for t in stuck)
        log.error("shutdown_timed_out", parts=parts, timeout_s=shutdown_timeout_s)
        raise TimeoutError(f"{', '.join(parts)} did not stop within {shutdown_timeout_s} s")
    failures = [
        (tasks[t], t.exception()) for t in tasks if not t.cancelled() and t.exception() is not None
    ]
    for name, error in failures:
        log.error("service_part_failed", part=name, error=repr(error))
    if failures:
        raise failures[0][1]  # type: ignore[misc]
    log.info("service_stopped")


def restarting(
    name: str, worker: Worker, *, backoff_s: float = 1.0, backoff_max_s: float = 60.0
) -> Worker:
    """``worker``, restarted after a logged crash (see the module's docstring)."""

    async def supervised(stop: StopSignal) -> None:
        delay = backoff_s
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await worker(stop)
                return
            except Exception as exc:  # the one place a bug is caught: logged, then restarted
                if stop.is_set():
                    raise
                if loop.time() - started > backoff_max_s:
                    delay = backoff_s  # it ran a good while: not a crash loop
                log.error("service_part_crashed", part=name, restart_in_s=delay, exc_info=exc)
            await pause(stop, delay)
            if stop.is_set():
                return
            delay = min(delay * 2, backoff_max_s)

    return supervised


def _on_signal(stop: StopSignal, sig: signal.Signals) -> None:
    log.info("shutdown_requested", signal=sig.name)
    stop.set()
