"""`ledger project` SIGKILLed mid-way and restarted equals a from-scratch rebuild."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from ledger_service.domain.usage import Usage, record_usage_on
from ledger_service.service.ledger import LedgerApplication
from projections.projector import Projector
from projections.tables import ReadModelTables
from tests.integration.test_projections import history, table_differences

pytestmark = pytest.mark.integration
LEDGER = str(Path(sys.executable).parent / "ledger")
KILL_TIMEOUT_S = 60


def write_usage(ledger: LedgerApplication, company: str, count: int) -> None:
    wallet = ledger.get_wallet(company)
    for start in range(0, count, 100):
        keys = []
        for i in range(start, start + 100):
            usage = Usage(
                source="//kill", event_id=f"{company}-{i}", company_id=company,
                waba_id=f"{company}-w1", conversation_id="c", category="marketing",
                status="delivered", units=1,
            )  # fmt: skip
            record_usage_on(wallet, usage, trust_producer_price=False)
            keys.append((usage.source, usage.event_id, company))
        ledger.save(wallet, usage_keys=keys)


def projector_env(database_url: str, schema: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return env | {
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_READ_MODELS_SCHEMA": schema,
        "LEDGER_PROJECTION_BATCH_SIZE_MAX": "10",
        "LEDGER_LOG_JSON": "true",
    }


def position_of(conn: psycopg.Connection[object], schema: str) -> int:
    try:
        row = conn.execute(f'SELECT position FROM "{schema}".rm_projection_positions').fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return 0
    conn.rollback()
    return int(row[0]) if row else 0  # type: ignore[call-overload]


def test_sigkilled_projection_resumes_to_a_rebuild(
    pg_ledger: LedgerApplication, database_url: str, company_id: str
) -> None:
    history(pg_ledger, company_id, f"{company_id}-b")
    write_usage(pg_ledger, company_id, 3000)
    head = pg_ledger.recorder.max_notification_id()
    assert head is not None
    live, rebuilt = f"rm_kill_{uuid.uuid4().hex[:8]}", f"rm_rebuild_{uuid.uuid4().hex[:8]}"
    env = projector_env(database_url, live)
    process = subprocess.Popen([LEDGER, "project"], env=env, stderr=subprocess.PIPE)
    with psycopg.connect(database_url) as conn:
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while (killed_at := position_of(conn, live)) < head // 3:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the projection did not get going"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)
        after_kill = position_of(conn, live)
    assert after_kill < head, "the kill came too late to prove anything"
    assert after_kill >= killed_at

    resumed = subprocess.run(
        [LEDGER, "project", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    projector = Projector(
        lambda: psycopg.connect(database_url), pg_ledger.recorder, pg_ledger.mapper,
        tables=ReadModelTables(rebuilt),
    )  # fmt: skip
    projector.setup()
    final = projector.catch_up()
    projector.close()
    with psycopg.connect(database_url) as conn:
        # Both saw the whole log (no other writer runs during this test).
        assert position_of(conn, live) == final
        assert set(table_differences(conn, live, rebuilt).values()) == {0}
