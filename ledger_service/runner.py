"""Runs the service's long-lived parts in one asyncio loop and stops them together.

The runner owns SIGINT/SIGTERM: on the first signal every part is asked to finish what it has in
flight (HTTP requests drain; later the consumer finishes its batch) and the process exits 0. A
second SIGINT forces the HTTP server down.

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


async def run_until_signalled(workers: dict[str, Worker]) -> None:
    """Run every worker until a signal (or one worker's end) asks all of them to stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _on_signal, stop, sig)
    tasks = {asyncio.create_task(worker(stop), name=name): name for name, worker in workers.items()}
    log.info("service_started", parts=sorted(workers))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    failures = [
        (tasks[t], r) for t, r in zip(tasks, results, strict=True) if isinstance(r, BaseException)
    ]
    for name, error in failures:
        log.error("service_part_failed", part=name, error=repr(error))
    if failures:
        raise failures[0][1]
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
