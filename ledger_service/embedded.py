"""Embedded infrastructure for ``make run`` on a fresh machine (development only).

``pgserver`` ships real PostgreSQL binaries in a wheel; ``get_server`` starts (or reuses) a server
on a data directory and returns it. ``cleanup_mode=None`` keeps it running and its data between
runs, which is what a developer expects of ``./.ledger-data``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)


def start_embedded_postgres(data_dir: Path) -> str:
    """Start PostgreSQL from the ``pgserver`` wheel and return its (Unix-socket) URI."""
    import pgserver

    pg_dir = (data_dir / "postgres").resolve()
    pg_dir.mkdir(parents=True, exist_ok=True)
    server: Any = pgserver.get_server(  # type: ignore[attr-defined]
        str(pg_dir), cleanup_mode=None
    )
    uri: str = server.get_uri()
    log.info("embedded_postgres_started", data_dir=str(pg_dir))
    return uri
