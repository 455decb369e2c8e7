"""Billing cycles, grant and hold expiry: start every wallet's due cycles (quota expiry and
grant) and expire its due credit grants and holds, exactly once.

Which wallets may be due comes from the wallet read model (``next_cycle_at``,
``next_grant_expiry_at``) and ``rm_holds``; whether a cycle or an expiry is really due is
decided by the aggregate itself, so a stale read model costs a wasted load, never a double grant
or expiry. Runs in ``ledger run`` every ``cycle_check_interval_s`` and on demand as
``ledger cycles run [--at TIME]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
import structlog

from ledger_service.follow import DATABASE_UNAVAILABLE, pause
from ledger_service.service.ledger import LedgerApplication
from projections.tables import ReadModelTables

log = structlog.get_logger(__name__)

Connect = Callable[[], psycopg.Connection[Any]]
SCHEDULER_ACTOR = "cycle-scheduler"


def wallets_due(connect: Connect, tables: ReadModelTables, now: datetime) -> list[UUID]:
    with connect() as conn:
        rows = conn.execute(
            f"SELECT wallet_id FROM {tables['rm_wallet_balances']} "
            "WHERE next_cycle_at IS NULL OR next_cycle_at <= %s OR next_grant_expiry_at <= %s "
            f"OR wallet_id IN (SELECT wallet_id FROM {tables['rm_holds']} WHERE expires_at <= %s) "
            "ORDER BY wallet_id",
            (now, now, now),
        ).fetchall()
    return [row[0] for row in rows]


def run_cycles(
    ledger: LedgerApplication, connect: Connect, tables: ReadModelTables, now: datetime
) -> tuple[int, int]:
    """(wallets looked at, cycles started and grants expired) as of ``now``."""
    due = wallets_due(connect, tables, now)
    started = ledger.start_due_cycles(due, now=now, actor=SCHEDULER_ACTOR) if due else 0
    if started:
        log.info("cycles_started", wallets=len(due), cycles=started, at=now.isoformat())
    return len(due), started


async def schedule_cycles(
    ledger: LedgerApplication,
    connect: Connect,
    tables: ReadModelTables,
    stop: asyncio.Event,
    interval_s: float,
) -> None:
    """Start due cycles every ``interval_s`` until ``stop``. Missing read models and an
    unreachable database are waited out; anything else is a bug and raises (the supervisor
    restarts the scheduler)."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(run_cycles, ledger, connect, tables, datetime.now(UTC))
        except psycopg.errors.UndefinedTable:
            # `ledger react` alone on a new database: the projector has not created them yet.
            log.info(
                "cycle_scheduler_waiting",
                reason="the wallet read model does not exist yet; it is built by the "
                "projections (`ledger project` or `ledger run`)",
            )
        except DATABASE_UNAVAILABLE as exc:
            log.warning("cycle_scheduler_unavailable", error=repr(exc))
        await pause(stop, interval_s)
