"""What the soak reads back at the end, each as PASS or FAIL: nothing lost, nothing applied
twice, every balance equal to the soak's own reference, ``ledger verify`` clean, a replay
equal to the live read models, and exactly the injected poison among the dead letters.

Every query here may meet a PostgreSQL that is restarting (the progress polls run during the
faults), so reads go through ``retrying``: a fresh connection per read, retried briefly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
from aiokafka import AIOKafkaConsumer

from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.domain.errors import WalletNotFound
from ledger_service.ingestion.records import position_prefix
from projections.tables import ALL_TABLES, POSITIONS

T = TypeVar("T")
RETRY_FOR_S = 60.0
DLQ_IDLE_S = 5.0
COMPARED_SCHEMA = "soak_live_before_replay"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


def retrying(url: str, read: Callable[[psycopg.Connection[Any]], T]) -> T:
    deadline = time.monotonic() + RETRY_FOR_S
    while True:
        try:
            with psycopg.connect(url, connect_timeout=3) as conn:
                return read(conn)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _scalar(conn: psycopg.Connection[Any], sql: str, *params: object) -> Any:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


def consumed_positions(url: str, topic: str) -> dict[int, int]:
    """Each partition's next offset as recorded with its deductions."""
    prefix = position_prefix(topic)
    rows = retrying(
        url,
        lambda conn: conn.execute(
            "SELECT application_name, notification_id FROM notification_tracking "
            "WHERE starts_with(application_name, %s)",
            (prefix,),
        ).fetchall(),
    )
    return {int(name[len(prefix) :]): int(offset) for name, offset in rows}


def behind(ends: dict[int, int], positions: dict[int, int]) -> int:
    """Records published and not yet recorded as consumed."""
    return sum(max(end - positions.get(partition, 0), 0) for partition, end in ends.items())


def usage_keys(url: str, source: str) -> int:
    return int(
        retrying(
            url,
            lambda conn: _scalar(
                conn, "SELECT count(*) FROM ledger_usage_keys WHERE source = %s", source
            ),
        )
    )


def projection_lag(url: str) -> int:
    """Events in the store the read models have not seen yet."""

    def read(conn: psycopg.Connection[Any]) -> int:
        head = _scalar(conn, "SELECT coalesce(max(notification_id), 0) FROM ledger_events")
        seen = _scalar(conn, "SELECT coalesce(max(position), 0) FROM rm_projection_positions")
        return int(head) - int(seen)

    return retrying(url, read)


def usage_debits(url: str, source: str) -> tuple[int, int]:
    """(usage debit entries, distinct usage events among them) in the read models."""
    row = retrying(
        url,
        lambda conn: conn.execute(
            "SELECT count(*), count(DISTINCT reference) FROM rm_ledger_entries "
            "WHERE kind = 'usage' AND direction = 'debit' AND starts_with(reference, %s)",
            (f"{source}#",),
        ).fetchone(),
    )
    assert row is not None
    return int(row[0]), int(row[1])


def _compared_tables() -> list[tuple[str, str]]:
    """(table, columns) compared before and after the replay: every column of every read
    model, except the projection position row's ``updated_at`` (when the row was last
    written, a wall-clock time of that run, not of the events)."""
    tables = [(table, "*") for table in ALL_TABLES if table != POSITIONS]
    return [*tables, (POSITIONS, "name, position")]


def keep_live_read_models(url: str) -> None:
    """Copy the live read models aside before the replay swaps them out."""

    def copy(conn: psycopg.Connection[Any]) -> None:
        conn.execute(f'DROP SCHEMA IF EXISTS "{COMPARED_SCHEMA}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{COMPARED_SCHEMA}"')
        for table, _ in _compared_tables():
            conn.execute(f'CREATE TABLE "{COMPARED_SCHEMA}".{table} AS TABLE public.{table}')
        conn.commit()

    retrying(url, copy)


def replay_differences(url: str) -> dict[str, tuple[int, int]]:
    """Per table: (rows differing either way between before and after the replay, rows)."""

    def compare(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, int]]:
        out = {}
        for table, columns in _compared_tables():
            before = f'SELECT {columns} FROM "{COMPARED_SCHEMA}".{table}'
            after = f"SELECT {columns} FROM public.{table}"
            differing = _scalar(
                conn,
                f"SELECT (SELECT count(*) FROM ({before} EXCEPT ALL {after}) a) "
                f"+ (SELECT count(*) FROM ({after} EXCEPT ALL {before}) b)",
            )
            rows = _scalar(conn, f"SELECT count(*) FROM public.{table}")
            out[table] = (int(differing), int(rows))
        return out

    return retrying(url, compare)


def wallet_balances(url: str, companies: list[str]) -> dict[str, Decimal | None]:
    """Each company's balance from its event-sourced wallet (the aggregate rebuilt from its
    events), not from a read model."""
    ledger = build_ledger(Settings(environment="test", db_pool_size=2), url)
    try:
        balances: dict[str, Decimal | None] = {}
        for company in companies:
            try:
                balances[company] = ledger.get_wallet(company).balance
            except WalletNotFound:
                balances[company] = None
        return balances
    finally:
        ledger.close()


async def dead_letters(bootstrap: str, topic: str) -> list[tuple[int, int, str]]:
    """Every dead letter's (original partition, original offset, code), read from the start of
    the dead-letter topic until it stays quiet (the embedded broker's end offsets are not to
    be trusted, see tests/integration/ingestion_support)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    letters: list[tuple[int, int, str]] = []
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < DLQ_IDLE_S:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                quiet_since = time.monotonic()
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers or ()}
                    letters.append((
                        int(headers.get("ledger-original-partition", -1)),
                        int(headers.get("ledger-original-offset", -1)),
                        headers.get("ledger-error-code", "?"),
                    ))  # fmt: skip
    finally:
        await consumer.stop()
    return letters


async def run_ledger(env: dict[str, str], *args: str, timeout_s: float) -> tuple[int, str]:
    """A one-shot ``ledger`` command: (exit code, its output); killed at ``timeout_s``."""
    from bench.soak_processes import LEDGER

    process = await asyncio.create_subprocess_exec(
        LEDGER, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    except (TimeoutError, asyncio.CancelledError):
        process.kill()
        await process.wait()
        raise
    return int(process.returncode or 0), output.decode(errors="replace")
