"""verify / history / audit export on a real PostgreSQL, with injected faults."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest

from ledger_service.audit.export import audit_rows, write_rows
from ledger_service.audit.history import wallet_as_of
from ledger_service.audit.replay import BinaryNotificationLog, replay
from ledger_service.audit.verify import read_model_snapshot, verify
from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.domain.ids import wallet_id
from ledger_service.domain.usage import Usage
from ledger_service.service.ledger import LedgerApplication
from projections.projector import Projector
from projections.tables import ALL_TABLES, ReadModelTables

pytestmark = pytest.mark.integration
D = Decimal


@pytest.fixture
def ledger(fresh_database_url: str) -> Iterator[LedgerApplication]:
    app = build_ledger(Settings(environment="test", db_pool_size=2), fresh_database_url)
    yield app
    app.close()


def workload(ledger: LedgerApplication) -> list[tuple[int, dict[str, Any]]]:
    """Wallets, senders, a paid and a rejected top-up, a transfer, usage; returns
    (position, wallet state as the live system reported it right then) after each step."""
    seen: list[tuple[int, dict[str, Any]]] = []

    def note(result: dict[str, Any]) -> None:
        wallet = ledger.get_wallet("acme")
        seen.append(
            (
                result["position"],
                {
                    "balance": wallet.balance,
                    "prepaid": wallet.prepaid,
                    "senders": set(wallet.senders),
                },
            )
        )

    for company in ("acme", "globex"):
        note(
            ledger.open_wallet(
                company_id=company,
                currency="USD",
                postpaid_limit="50",
                included_quota="20",
                rate_card={"marketing": "0.5"},
                actor="op",
                idempotency_key="open",
            )
        )
    note(ledger.link_sender(company_id="acme", waba_id="w1", actor="op", idempotency_key="l"))
    topup = UUID(
        ledger.request_topup(
            company_id="acme", amount="100", currency="USD", actor="t", idempotency_key="r1"
        )["topup_id"]
    )
    ledger.approve_topup(topup_id=topup, actor="op", idempotency_key="a1")
    note(
        ledger.mark_topup_paid(
            topup_id=topup, payment_reference="bank", actor="op", idempotency_key="p1"
        )
    )
    rejected = UUID(
        ledger.request_topup(
            company_id="acme", amount="5", currency="USD", actor="t", idempotency_key="r2"
        )["topup_id"]
    )
    ledger.reject_topup(topup_id=rejected, reason="no", actor="op", idempotency_key="x")
    # A grant that usage drains after the included quota, voided with 5 left.
    welcome = ledger.issue_grant(
        company_id="acme", amount=Decimal(15), reason="welcome", reference="welcome",
        expires_at=datetime.now(UTC) + timedelta(days=30), actor="op", idempotency_key="gr",
    )  # fmt: skip
    note(welcome)
    # One that stays active (drained after "welcome"): replay must rebuild its row's JSON too.
    note(
        ledger.issue_grant(
            company_id="acme",
            amount=Decimal(3),
            reason="loyalty",
            reference="loyalty",
            priority=20,
            actor="op",
            idempotency_key="gr2",
        )
    )
    # Holds: m0's settled by its usage event below, one left active (replay rebuilds rm_holds).
    for reference in ("m0", "later"):
        ledger.place_hold(
            company_id="acme", waba_id="w1", category="marketing", units=1,
            reference=reference, actor="sender", idempotency_key=f"hold-{reference}",
        )  # fmt: skip
    for n in range(60):
        ledger.apply_usage(
            Usage(
                source="//t",
                event_id=f"m{n}",
                company_id="acme",
                waba_id="w1",
                conversation_id="c",
                category="marketing",
                status="delivered",
                units=1,
            )
        )
    note(
        ledger.void_grant(
            company_id="acme", grant_id=UUID(welcome["grant_id"]), actor="op", idempotency_key="v"
        )
    )
    # m0 reported undelivered: its charge given back (verify checks refunds against usage).
    note(
        ledger.refund_usage(
            company_id="acme",
            usage_source="//t",
            usage_id="m0",
            reason="undelivered",
            actor="op",
            idempotency_key="rf",
        )
    )
    note(
        ledger.transfer(
            from_company_id="acme",
            to_company_id="globex",
            amount="10",
            commission_rate="0.1",
            actor="op",
            idempotency_key="g",
        )
    )
    return seen


def faults(ledger: LedgerApplication) -> list[str]:
    report = verify(ledger)
    return report.problems


def test_verify_passes_on_a_clean_store(ledger: LedgerApplication) -> None:
    workload(ledger)
    report = verify(ledger)
    assert report.ok, report.problems
    assert report.events > 60
    assert sum(report.trial_balance.values()) == 0


def execute(url: str, sql: str, *params: object) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql, params or None)


def test_verify_names_an_altered_amount(ledger: LedgerApplication, fresh_database_url: str) -> None:
    workload(ledger)
    execute(
        fresh_database_url,
        "UPDATE ledger_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
        '\'"_data_":"0.5000000"\', \'"_data_":"0.0500000"\'), \'UTF8\') '
        "WHERE notification_id = (SELECT min(notification_id) FROM ledger_events "
        "WHERE topic LIKE '%Wallet.Debited')",
    )
    problems = faults(ledger)
    assert any("hash chain broken" in p and "acme" in p for p in problems), problems


def test_verify_names_a_deleted_event(ledger: LedgerApplication, fresh_database_url: str) -> None:
    workload(ledger)
    execute(
        fresh_database_url,
        "DELETE FROM ledger_events WHERE notification_id = (SELECT min(notification_id) "
        "FROM ledger_events WHERE topic LIKE '%Wallet.Debited')",
    )
    problems = faults(ledger)
    assert any("version gap" in p for p in problems), problems


def append_copy_as_next_version(url: str, company: str, topic: str, state_like: str) -> None:
    """Re-append a copy of the company wallet's first ``topic`` event whose state matches
    ``state_like``, as the wallet's next version (what a double application would leave)."""
    wallet = wallet_id(company)
    execute(
        url,
        "INSERT INTO ledger_events (originator_id, originator_version, topic, state) "
        "SELECT originator_id, (SELECT max(originator_version) + 1 FROM ledger_events "
        "WHERE originator_id = %s), topic, state FROM ledger_events "
        "WHERE originator_id = %s AND topic LIKE %s "
        "AND convert_from(state, 'UTF8') LIKE %s ORDER BY originator_version LIMIT 1",
        wallet,
        wallet,
        f"%{topic}",
        state_like,
    )


def test_verify_names_a_usage_applied_twice(
    ledger: LedgerApplication, fresh_database_url: str
) -> None:
    workload(ledger)
    append_copy_as_next_version(fresh_database_url, "acme", "Wallet.Debited", '%"kind":"usage"%')
    problems = faults(ledger)
    assert any("was applied 2 times" in p for p in problems), problems


def test_verify_names_a_topup_credited_twice(
    ledger: LedgerApplication, fresh_database_url: str
) -> None:
    workload(ledger)
    append_copy_as_next_version(fresh_database_url, "acme", "Wallet.Credited", '%"kind":"topup"%')
    problems = faults(ledger)
    assert any(
        p.startswith("top-up ") and "is completed and credited 2 times" in p for p in problems
    ), problems


def test_verify_names_a_split_that_does_not_add_up_to_its_amount(
    ledger: LedgerApplication, fresh_database_url: str
) -> None:
    workload(ledger)
    # The first usage debit's prepaid share raised from 0 to 1 while its amount stays 0.5.
    execute(
        fresh_database_url,
        "UPDATE ledger_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
        '\'"prepaid":{"_type_":"decimal_str","_data_":"0E-7"}\', '
        '\'"prepaid":{"_type_":"decimal_str","_data_":"1.0000000"}\'), \'UTF8\') '
        "WHERE notification_id = (SELECT min(notification_id) FROM ledger_events "
        "WHERE topic LIKE '%Wallet.Debited')",
    )
    problems = faults(ledger)
    assert any(p.startswith("wallet of acme: its account in the books holds") for p in problems), (
        problems
    )


def test_history_at_a_position_equals_what_the_live_system_reported(
    ledger: LedgerApplication,
) -> None:
    for position, live in workload(ledger):
        past = wallet_as_of(ledger, "acme", position=position).wallet
        assert (past.balance, past.prepaid, set(past.senders)) == (
            live["balance"],
            live["prepaid"],
            live["senders"],
        ), position


def test_audit_export_has_every_entry_with_running_balances(
    ledger: LedgerApplication,
) -> None:
    workload(ledger)
    out = io.StringIO()
    write_rows(audit_rows(ledger, "acme"), out, "jsonl")
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    money = [r for r in rows if r["amount"]]
    # 60 usage + 1 grant voided + 1 transfer
    assert [r["event"] for r in money].count("Debited") == 62
    assert all(
        D(r["balance_after"])
        == D(r["balance_before"])
        + (D(r["amount"]) if r["event"] == "Credited" else -D(r["amount"]))
        for r in money
    )
    assert D(rows[-1]["balance_after"]) == ledger.get_wallet("acme").balance
    assert all(r["actor"] and r["position"] for r in rows)
    positions = [r["position"] for r in rows]
    assert positions == sorted(positions)


def live_projection(ledger: LedgerApplication, url: str) -> Projector:
    projector = Projector(
        lambda: psycopg.connect(url),
        ledger.recorder,  # type: ignore[arg-type]
        ledger.mapper,
        tables=ReadModelTables("public"),
        batch_size_max=50,
    )
    projector.setup()
    return projector


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model row, sorted (the positions table without its wall-clock column)."""
    tables = ReadModelTables("public")
    out = {}
    with psycopg.connect(url) as conn:
        for table in ALL_TABLES:
            columns = "name, position" if table == "rm_projection_positions" else "*"
            rows = conn.execute(f"SELECT {columns} FROM {tables[table]}").fetchall()
            out[table] = sorted(rows, key=repr)
    return out


def keys_and_indexes(url: str) -> set[tuple[str, ...]]:
    """Every key, constraint and index of the live read-model tables, as the catalogue has it."""
    with psycopg.connect(url) as conn:
        indexes = conn.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = 'public' AND tablename LIKE 'rm_%%'"
        ).fetchall()
        constraints = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
            "AND conrelid::regclass::text LIKE 'rm_%%'"
        ).fetchall()
    return {tuple(row) for row in [*indexes, *constraints]}


# The rebuild holds wallet/usage/account rows in memory across sections and writes them when
# more than ``state_rows_max`` are held: both ways (and writing after every section) must
# build the same rows as the live projector.
@pytest.mark.parametrize("state_rows_max", [100_000, 3, 0])
def test_replay_rebuilds_the_read_models_row_for_row_and_swaps_atomically(
    ledger: LedgerApplication,
    fresh_database_url: str,
    state_rows_max: int,
) -> None:
    workload(ledger)
    projector = live_projection(ledger, fresh_database_url)
    head = projector.catch_up()
    projector.close()
    live = dump(fresh_database_url)
    assert len(live["rm_ledger_entries"]) > 60
    live_indexes = keys_and_indexes(fresh_database_url)
    assert ("rm_ledger_entries", "rm_ledger_entries_pkey", 'PRIMARY KEY ("position")') in (
        live_indexes
    )

    wallets_seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:  # a reader of the live tables during the whole replay
        with psycopg.connect(fresh_database_url, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute("SELECT count(*) FROM rm_wallet_balances").fetchone()
                wallets_seen.append(row[0] if row else -1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = replay(
            ledger,
            lambda: psycopg.connect(fresh_database_url),
            live_schema="public",
            batch_size_max=7,
            state_rows_max=state_rows_max,
        )
    finally:
        stop.set()
        watcher.join()
    assert result.position == head
    assert dump(fresh_database_url) == live
    # The rebuild builds the entries' key and indexes after loading them: all there again.
    assert keys_and_indexes(fresh_database_url) == live_indexes
    assert wallets_seen
    assert set(wallets_seen) == {2}  # never an empty or half-built table
    with psycopg.connect(fresh_database_url) as conn:
        schemas = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rm_replay_%%'"
        ).fetchone()
    assert schemas == (0,)


def test_the_replay_reads_the_same_notifications_as_the_recorder(
    ledger: LedgerApplication,
) -> None:
    workload(ledger)
    recorder: Any = ledger.recorder
    log = BinaryNotificationLog(recorder)
    head = log.max_notification_id()
    assert head is not None
    assert head == recorder.max_notification_id()
    for start, limit, stop in [
        (1, 1000, None),
        (1, 7, None),
        (5, 10, 9),
        (3, 4, head),
        (head, 5, None),
    ]:
        assert log.select_notifications(start, limit, stop) == recorder.select_notifications(
            start, limit, stop
        )


def test_replay_to_a_position_gives_the_read_models_of_then(
    ledger: LedgerApplication,
    fresh_database_url: str,
) -> None:
    steps = workload(ledger)
    position, live = steps[2]
    replay(
        ledger,
        lambda: psycopg.connect(fresh_database_url),
        live_schema="public",
        to_position=position,
    )
    with psycopg.connect(fresh_database_url) as conn:
        row = conn.execute(
            "SELECT included + prepaid - postpaid_used FROM rm_wallet_balances "
            "WHERE company_id = 'acme'"
        ).fetchone()
    assert row is not None
    assert row[0] == live["balance"]


def test_verify_compares_read_models_and_names_a_row_edited_by_hand(
    ledger: LedgerApplication,
    fresh_database_url: str,
) -> None:
    workload(ledger)
    projector = live_projection(ledger, fresh_database_url)
    projector.catch_up()
    projector.close()
    with psycopg.connect(fresh_database_url) as conn:
        assert verify(ledger, read_model_snapshot(conn, "public")).ok
        # A projection that is merely behind is not a fault: only what it covers is compared.
        ledger.apply_usage(
            Usage(
                source="//t",
                event_id="late",
                company_id="acme",
                waba_id="w1",
                conversation_id="c",
                category="marketing",
                status="delivered",
                units=1,
            )
        )
        assert verify(ledger, read_model_snapshot(conn, "public")).ok
    execute(
        fresh_database_url,
        "UPDATE rm_wallet_balances SET prepaid = prepaid + 1 WHERE company_id = 'globex'",
    )
    execute(
        fresh_database_url,
        "UPDATE rm_account_totals SET total = total - 1 WHERE account = 'revenue:usage'",
    )
    with psycopg.connect(fresh_database_url) as conn:
        problems = verify(ledger, read_model_snapshot(conn, "public")).problems
    assert any("read model balance of globex" in p for p in problems), problems
    assert any("account revenue:usage" in p for p in problems), problems
