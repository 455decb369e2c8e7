"""Embedded infrastructure for ``make run`` on a fresh machine (development only).

``pgserver`` ships real PostgreSQL binaries in a wheel; ``get_server`` starts (or reuses) a server
on a data directory and returns it. ``cleanup_mode="stop"`` stops the server when we exit and
keeps the data under ``./.ledger-data`` for the next run.
"""

from __future__ import annotations

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
