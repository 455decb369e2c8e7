"""The audit commands as an operator runs them: the `ledger` executable in a subprocess, on a
real PostgreSQL, reading its database from the environment."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from ledger_service.audit.verify import PROBLEMS_MAX
from ledger_service.service.ledger import LedgerApplication
from tests.integration.test_audit import dump, execute, ledger, workload

pytestmark = pytest.mark.integration
__all__ = ["ledger"]  # the fixture, shared with test_audit

LEDGER = str(Path(sys.executable).parent / "ledger")
D = Decimal


def run_ledger(
    url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The ``ledger`` executable on ``url``, with ``env`` added to a clean LEDGER_ environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env = clean | {"LEDGER_DATABASE_URL": url, "LEDGER_LOG_LEVEL": "warning"} | (env or {})
    return subprocess.run(
        [LEDGER, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_replay_and_verify_commands_repair_and_name_a_hand_edited_read_model(
    ledger: LedgerApplication, fresh_database_url: str
) -> None:
    url = fresh_database_url
    workload(ledger)
    assert run_ledger(url, "project", "--once").returncode == 0
    clean = dump(url)
    verified = run_ledger(url, "verify")
    assert verified.returncode == 0, verified.stderr
    assert "OK:" in verified.stdout
    assert "read models agree" in verified.stdout

    execute(url, "UPDATE rm_wallet_balances SET prepaid = prepaid + 7 WHERE company_id = 'acme'")
    damaged = run_ledger(url, "verify")
    assert damaged.returncode == 1
    assert re.search(r"FAULT: read model balance of acme .*", damaged.stderr), damaged.stderr

    replayed = run_ledger(url, "replay", "--all")
    assert replayed.returncode == 0, replayed.stderr
    found = re.search(r"replayed (\d+) events up to position (\d+) .*\(([\d,]+) events/s\)", (
        replayed.stdout
    ))  # fmt: skip
    assert found, replayed.stdout
    with psycopg.connect(url) as conn:
        head = conn.execute("SELECT max(notification_id) FROM ledger_events").fetchone()
    assert head is not None
    assert int(found[1]) == int(found[2]) == head[0]
    assert int(found[3].replace(",", "")) > 0
    assert dump(url) == clean  # the hand edit is gone: the tables were rebuilt and swapped in
    assert run_ledger(url, "verify").returncode == 0


def test_replay_refuses_unclear_options(fresh_database_url: str) -> None:
    neither = run_ledger(fresh_database_url, "replay")
    assert neither.returncode == 2
    assert "--projection NAME or --all" in neither.stderr
    unknown = run_ledger(fresh_database_url, "replay", "--projection", "nope")
    assert unknown.returncode == 2
    assert "unknown projection 'nope'" in unknown.stderr


def test_verify_lists_at_most_the_bound_and_counts_the_rest(
    ledger: LedgerApplication, fresh_database_url: str
) -> None:
    workload(ledger)
    # Every usage debit altered: one broken link per entry, more than the listing shows.
    execute(
        fresh_database_url,
        "UPDATE ledger_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
        '\'"_data_":"0.5000000"\', \'"_data_":"0.0500000"\'), \'UTF8\') '
        "WHERE topic LIKE '%Wallet.Debited'",
    )
    result = run_ledger(fresh_database_url, "verify")
    assert result.returncode == 1
    faults = [line for line in result.stderr.splitlines() if line.startswith("FAULT: ")]
    assert len(faults) == PROBLEMS_MAX
    more = re.search(r"^\.\.\. and (\d+) more$", result.stderr, re.MULTILINE)
    assert more, result.stderr
    assert int(more[1]) > 0


def test_history_command_at_a_position_and_at_a_time(
    ledger: LedgerApplication, fresh_database_url: str
) -> None:
    steps = workload(ledger)
    position, live = steps[3]  # right after the paid top-up
    by_position = run_ledger(
        fresh_database_url, "history", "--company", "acme", "--position", str(position)
    )
    assert by_position.returncode == 0, by_position.stderr
    then = json.loads(by_position.stdout)
    assert (D(then["balance"]), D(then["buckets"]["prepaid"]), set(then["senders"])) == (
        live["balance"],
        live["prepaid"],
        live["senders"],
    )
    assert then["as_of_position"] <= position  # the wallet's last event at or before it

    # The same moment by time: the event's own timestamp, given without a zone (taken as UTC).
    stamp = ledger.events.get(ledger.get_wallet("acme").id, gt=then["as_of_version"] - 1)
    at = next(iter(stamp)).timestamp.replace(tzinfo=None).isoformat()
    by_time = run_ledger(fresh_database_url, "history", "--company", "acme", "--at", at)
    assert by_time.returncode == 0, by_time.stderr
    assert json.loads(by_time.stdout) == then

    unknown = run_ledger(fresh_database_url, "history", "--company", "nobody", "--position", "1")
    assert unknown.returncode == 1
    assert "WALLET_NOT_FOUND" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_audit_export_command_as_csv_and_within_a_time_window(
    ledger: LedgerApplication, fresh_database_url: str
) -> None:
    workload(ledger)
    full = run_ledger(fresh_database_url, "audit", "export", "--company", "acme")
    assert full.returncode == 0, full.stderr
    rows = list(csv.DictReader(io.StringIO(full.stdout)))
    money = [r for r in rows if r["amount"]]
    credit = next(r for r in money if r["kind"] == "topup")
    assert (credit["event"], credit["amount"], credit["actor"]) == ("Credited", "100", "op")
    assert D(credit["balance_after"]) == D(credit["balance_before"]) + 100
    assert credit["reference"].startswith("topup:")
    assert credit["counter_account"]
    usage = [r for r in money if r["kind"] == "usage"]
    assert len(usage) == 60
    assert {(r["sender_id"], r["category"], r["unit_price"]) for r in usage} == {
        ("w1", "marketing", "0.5")
    }
    assert D(rows[-1]["balance_after"]) == ledger.get_wallet("acme").balance

    # A window cut from the trail's own times: exactly the rows inside it, the same rows.
    times = [datetime.fromisoformat(r["time"]) for r in rows]
    since, until = times[len(times) // 3], times[2 * len(times) // 3]
    window = run_ledger(
        fresh_database_url, "audit", "export", "--company", "acme", "--format", "jsonl",
        "--from", since.isoformat(), "--to", until.isoformat(),
    )  # fmt: skip
    assert window.returncode == 0, window.stderr
    inside = [json.loads(line) for line in window.stdout.splitlines()]
    expected = [r for r, t in zip(rows, times, strict=True) if since <= t < until]
    assert inside
    assert [str(r["position"]) for r in inside] == [r["position"] for r in expected]
    assert [r["balance_after"] for r in inside] == [r["balance_after"] for r in expected]
