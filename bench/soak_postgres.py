"""The soak's own PostgreSQL: a private server from the ``pgserver`` wheel's binaries that the
soak may stop and start at will (the machine's server is shared and must never be restarted).

``initdb`` into the run's directory, ``pg_ctl start`` on a free loopback TCP port with trust
auth, and restarts with ``pg_ctl stop -m fast`` (clients disconnected, checkpoint) or
``-m immediate`` (no checkpoint: crash recovery on the next start). PostgreSQL refuses to run
as root, so under root the binaries run as the unprivileged ``nobody`` user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

PG_CTL_TIMEOUT_S = 120
READY_TIMEOUT_S = 60.0
RUN_AS_UNDER_ROOT = "nobody"


def pg_bin_dir() -> Path:
    """Where the ``pgserver`` wheel keeps initdb, pg_ctl and postgres (found, not imported:
    importing pgserver registers atexit hooks and a lock file we do not need)."""
    import importlib.util

    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise RuntimeError("the pgserver package is not installed (make install)")
    return Path(spec.origin).parent / "pginstall" / "bin"


@dataclass
class PrivatePostgres:
    root: Path
    port: int
    max_connections: int = 300
    restarts_fast: int = 0
    restarts_immediate: int = 0

    @property
    def data_dir(self) -> Path:
        return self.root / "pgdata"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run_as(self) -> dict[str, Any]:
        """subprocess options that drop root for the PostgreSQL binaries."""
        if os.geteuid() != 0:
            return {}
        entry = pwd.getpwnam(RUN_AS_UNDER_ROOT)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _tool(self, name: str, *args: str, timeout_s: float = PG_CTL_TIMEOUT_S) -> None:
        command = [str(pg_bin_dir() / name), "-D", str(self.data_dir), *args]
        with (self.root / "pg_ctl.log").open("ab") as out:
            subprocess.run(
                command,
                check=True,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                **self._run_as(),
            )

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir()
        self.log_file.touch()
        if os.geteuid() == 0:  # the server's user must own its data and write its log
            self.root.chmod(0o755)
            entry = pwd.getpwnam(RUN_AS_UNDER_ROOT)
            for path in (self.data_dir, self.log_file):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._tool("initdb", "--auth=trust", "-U", "postgres", "--encoding=utf8", "--no-sync")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "max_connections": str(self.max_connections),
            # No Unix socket: loopback TCP only, nothing shared with the machine's server.
            "unix_socket_directories": "''",
            "shared_buffers": "256MB",
            "log_min_messages": "warning",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def start(self) -> None:
        self._tool("pg_ctl", "-w", "-t", str(int(READY_TIMEOUT_S)), "-l", str(self.log_file),
                   "start")  # fmt: skip
        self.wait_ready()

    def stop(self, mode: str) -> None:
        self._tool("pg_ctl", "-w", "-t", str(int(READY_TIMEOUT_S)), "-m", mode, "stop")

    def restart(self, mode: str, down_s: float) -> None:
        """Stop (``fast`` or ``immediate``), stay down ``down_s`` seconds, start again."""
        self.stop(mode)
        time.sleep(down_s)
        self.start()
        if mode == "fast":
            self.restarts_fast += 1
        else:
            self.restarts_immediate += 1

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        """Stop the server however it is (immediate: nothing of it is kept) and delete its
        data. Never raises: this runs on every way out, Ctrl-C included."""
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
