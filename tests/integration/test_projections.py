"""Read-model projections on a real PostgreSQL: contents, exactly once, crash and resume."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from ledger_service.domain.accounts import wallet_account
from ledger_service.domain.usage import Usage
from ledger_service.service.ledger import LedgerApplication
from projections.builder import HANDLED_EVENTS
from projections.projector import Projector
from projections.rows import (
    AccountRow,
    AlertRow,
    EntryRow,
    HoldRow,
    TopupRow,
    TransferRow,
    UsageRow,
    WalletRow,
    columns,
    jsonb_columns,
)
from projections.tables import (
    ACCOUNTS,
    ALERTS,
    ALL_TABLES,
    ENTRIES,
    HOLDS,
    POSITIONS,
    TOPUPS,
    TRANSFERS,
    USAGE,
    WALLETS,
    ReadModelTables,
)

pytestmark = pytest.mark.integration
D = Decimal


class InjectedCrash(Exception):
    pass


@pytest.fixture
def connect(database_url: str) -> Callable[[], psycopg.Connection[Any]]:
    return lambda: psycopg.connect(database_url)


@pytest.fixture
def make_projector(
    pg_ledger: LedgerApplication, connect: Callable[[], psycopg.Connection[Any]]
) -> Iterator[Callable[..., Projector]]:
    made: list[Projector] = []

    def make(schema: str, **kwargs: Any) -> Projector:
        projector = Projector(
            connect, pg_ledger.recorder, pg_ledger.mapper,
            tables=ReadModelTables(schema), **kwargs,
        )  # fmt: skip
        projector.setup()
        made.append(projector)
        return projector

    yield make
    for projector in made:
        projector.close()


def fresh_schema() -> str:
    return f"rm_test_{uuid.uuid4().hex[:10]}"


def history(ledger: LedgerApplication, company: str, other: str) -> None:
    """A bit of everything: wallets, senders, usage, failed usage, top-ups, transfers."""
    for co in (company, other):
        ledger.open_wallet(
            company_id=co, currency="USD", postpaid_limit="100", included_quota="5",
            rate_card={"marketing": "0.5", "utility": "0.25"}, actor="op", idempotency_key="open",
        )  # fmt: skip
        ledger.link_sender(company_id=co, waba_id=f"{co}-w1", actor="op", idempotency_key="l1")
    for i in range(12):
        ledger.apply_usage(
            Usage(
                source="//test", event_id=f"{company}-{i}", company_id=company,
                waba_id=f"{company}-w1", conversation_id=f"c{i}",
                category="marketing" if i % 3 else "utility",
                status="failed" if i == 5 else "delivered", units=1 + i % 2,
            )
        )  # fmt: skip
    topup = ledger.request_topup(
        company_id=company, amount="50", currency="USD", actor="t", idempotency_key="r1"
    )["topup_id"]
    ledger.approve_topup(topup_id=uuid.UUID(topup), actor="op", idempotency_key="a1")
    ledger.mark_topup_paid(
        topup_id=uuid.UUID(topup), payment_reference="bank-1", actor="op", idempotency_key="p1"
    )
    rejected = ledger.request_topup(
        company_id=company, amount="7", currency="USD", actor="t", idempotency_key="r2"
    )["topup_id"]
    ledger.reject_topup(topup_id=uuid.UUID(rejected), reason="no", actor="op", idempotency_key="x")
    ledger.configure_wallet(
        company_id=company, postpaid_limit="250", actor="op", idempotency_key="cfg"
    )
    ledger.transfer(
        from_company_id=company, to_company_id=other, amount="10", commission_rate="0.1",
        actor="op", idempotency_key="tr1",
    )  # fmt: skip
    ledger.place_hold(
        company_id=company, waba_id=f"{company}-w1", category="marketing", units=2,
        reference=f"{company}-held", actor="sender", idempotency_key="h1",
    )  # fmt: skip
    ledger.unlink_sender(company_id=other, waba_id=f"{other}-w1", actor="op", idempotency_key="u")
    card = ledger.request_topup(
        company_id=company, amount="20", currency="USD", payment_method="card", actor="t",
        idempotency_key="card",
    )  # fmt: skip
    declined = uuid.UUID(card["payment_order"]["payment_order_id"])
    ledger.apply_payment_event(
        provider="mock", payment_order_id=declined, kind="failed", reason="declined",
        actor="mock-webhook", idempotency_key=f"{company}-evt-1",
    )  # fmt: skip
    ledger.create_payment_order(
        topup_id=uuid.UUID(card["topup_id"]), actor="t", idempotency_key="again"
    )


def table_differences(conn: psycopg.Connection[Any], a: str, b: str) -> dict[str, int]:
    """Rows in one schema's table and not the other's (both ways), per table."""
    differences = {}
    for table in ALL_TABLES:
        if table == POSITIONS:
            continue
        row = conn.execute(
            f'SELECT (SELECT count(*) FROM ((TABLE "{a}".{table}) EXCEPT ALL '
            f'(TABLE "{b}".{table})) x) + (SELECT count(*) FROM ((TABLE "{b}".{table}) '
            f'EXCEPT ALL (TABLE "{a}".{table})) y), (SELECT count(*) FROM "{a}".{table})'
        ).fetchone()
        assert row is not None
        assert row[1] > 0, f"{table} is empty: the comparison would prove nothing"
        differences[table] = row[0]
    return differences


def test_every_handled_event_class_exists() -> None:
    from ledger_service.domain.payment_order import PaymentOrder
    from ledger_service.domain.topup import TopupRequest
    from ledger_service.domain.transfer import Transfer
    from ledger_service.domain.wallet import Wallet

    owners = {
        "Wallet": Wallet, "TopupRequest": TopupRequest, "PaymentOrder": PaymentOrder,
        "Transfer": Transfer,
    }  # fmt: skip
    for name in HANDLED_EVENTS:
        owner, event = name.split(".")
        assert isinstance(vars(owners[owner])[event], type)


def test_the_row_classes_name_exactly_the_columns_of_the_tables(
    make_projector: Callable[..., Projector], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    """The DDL is written by hand (types, defaults, migrations); everything else derives its
    column lists from the row classes, so the two must agree."""
    schema = fresh_schema()
    make_projector(schema)
    expected = {
        WALLETS: WalletRow, ENTRIES: EntryRow, USAGE: UsageRow, TOPUPS: TopupRow,
        ACCOUNTS: AccountRow, ALERTS: AlertRow, HOLDS: HoldRow, TRANSFERS: TransferRow,
    }  # fmt: skip
    with connect() as conn:
        for table, row_class in expected.items():
            found = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s",
                (schema, table),
            ).fetchall()
            assert {name for name, _ in found} == set(columns(row_class)), table
            jsonb = {name for name, data_type in found if data_type == "jsonb"}
            assert jsonb == jsonb_columns(row_class), table


def test_tables_built_before_grants_and_holds_get_their_columns_from_the_baseline(
    make_projector: Callable[..., Projector], connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    schema = fresh_schema()
    make_projector(schema)
    with connect() as conn:  # as a read model from before grants, and before versions, was
        conn.execute(
            f'ALTER TABLE "{schema}".rm_wallet_balances DROP COLUMN granted, '
            "DROP COLUMN grants, DROP COLUMN next_grant_expiry_at, DROP COLUMN held"
        )
        conn.execute(f'ALTER TABLE "{schema}".rm_ledger_entries DROP COLUMN grants')
        conn.execute(f'DROP TABLE "{schema}".rm_schema_migrations')
    make_projector(schema)  # the baseline migration brings it to version 1
    with connect() as conn:
        for table, row_class in ((WALLETS, WalletRow), (ENTRIES, EntryRow)):
            found = conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s",
                (schema, table),
            ).fetchall()
            assert {name for (name,) in found} == set(columns(row_class)), table


def test_read_models_agree_with_the_aggregates_and_the_books(
    pg_ledger: LedgerApplication,
    make_projector: Callable[..., Projector],
    connect: Callable[[], psycopg.Connection[Any]],
    company_id: str,
) -> None:
    other = f"{company_id}-b"
    history(pg_ledger, company_id, other)
    schema = fresh_schema()
    projector = make_projector(schema, batch_size_max=7)
    head = pg_ledger.recorder.max_notification_id()
    assert projector.catch_up() == head
    wallet = pg_ledger.get_wallet(company_id)
    with connect() as conn:
        row = conn.execute(
            f"SELECT included, prepaid, postpaid_used, postpaid_limit, balance, available, "
            f'senders, position FROM "{schema}".rm_wallet_balances WHERE company_id = %s',
            (company_id,),
        ).fetchone()
        assert row is not None
        assert row[:6] == (
            wallet.included, wallet.prepaid, wallet.postpaid_used, D(250),
            wallet.balance, wallet.available,
        )  # fmt: skip
        assert row[6] == [f"{company_id}-w1"]
        entries = conn.execute(
            f"SELECT sum(amount), count(*), (array_agg(balance_after ORDER BY position DESC))[1] "
            f'FROM "{schema}".rm_ledger_entries WHERE company_id = %s',
            (company_id,),
        ).fetchone()
        assert entries is not None
        assert entries[0] == wallet.balance == entries[2]
        usage = conn.execute(
            f"SELECT sum(billable_count), sum(failed_count), sum(units), sum(amount) "
            f'FROM "{schema}".rm_usage_daily WHERE company_id = %s',
            (company_id,),
        ).fetchone()
        assert usage == (11, 1, 16, D("6.5"))  # i = 5 failed (2 units)
        topups = conn.execute(
            f"SELECT status, invoice_number IS NOT NULL, payment_reference, reason "
            f'FROM "{schema}".rm_topups WHERE company_id = %s ORDER BY created_position',
            (company_id,),
        ).fetchall()
        assert topups == [
            ("completed", True, "bank-1", None),
            ("rejected", False, None, "no"),
            ("invoiced", True, None, None),  # by card: its second order still open
        ]
        orders = conn.execute(
            f'SELECT status, failure_reason, checkout_url IS NOT NULL FROM "{schema}".'
            "rm_payment_orders WHERE company_id = %s ORDER BY position",
            (company_id,),
        ).fetchall()
        assert orders == [("failed", "declined", True), ("created", None, True)]
        accounts = dict(
            conn.execute(f'SELECT account, total FROM "{schema}".rm_account_totals').fetchall()
        )
        assert sum(accounts.values()) == 0
        assert accounts[wallet_account(wallet.id)] == wallet.balance


def test_a_projection_killed_mid_way_resumes_to_a_from_scratch_rebuild(
    pg_ledger: LedgerApplication,
    make_projector: Callable[..., Projector],
    connect: Callable[[], psycopg.Connection[Any]],
    company_id: str,
) -> None:
    history(pg_ledger, company_id, f"{company_id}-b")
    head = pg_ledger.recorder.max_notification_id()
    assert head is not None
    live, rebuilt = fresh_schema(), fresh_schema()
    batches = 0

    def crash_on_third_batch(_position: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 3:
            raise InjectedCrash("killed after writing the batch, before its commit")

    crashing = make_projector(live, batch_size_max=5, before_commit=crash_on_third_batch)
    with pytest.raises(InjectedCrash):
        crashing.catch_up(stop=head)
    crashing.close()
    resumed = make_projector(live, batch_size_max=5)
    assert resumed.position() < head
    assert resumed.catch_up(stop=head) == head
    assert make_projector(rebuilt, batch_size_max=1000).catch_up(stop=head) == head
    with connect() as conn:
        assert set(table_differences(conn, live, rebuilt).values()) == {0}


def test_two_projectors_on_the_same_tables_apply_each_event_once(
    pg_ledger: LedgerApplication,
    make_projector: Callable[..., Projector],
    connect: Callable[[], psycopg.Connection[Any]],
    company_id: str,
) -> None:
    history(pg_ledger, company_id, f"{company_id}-b")
    head = pg_ledger.recorder.max_notification_id()
    assert head is not None
    shared, reference = fresh_schema(), fresh_schema()
    first = make_projector(shared, batch_size_max=4)
    second = make_projector(shared, batch_size_max=4)
    # Interleave: each one's cached position goes stale after the other's commit.
    while first.project_batch(stop=head) + second.project_batch(stop=head):
        pass
    make_projector(reference).catch_up(stop=head)
    with connect() as conn:
        assert set(table_differences(conn, shared, reference).values()) == {0}


def test_projectors_and_api_replicas_may_create_the_tables_at_the_same_time(
    pg_ledger: LedgerApplication, connect: Callable[[], psycopg.Connection[Any]]
) -> None:
    schema = fresh_schema()
    count = 8
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def set_up() -> None:
        projector = Projector(
            connect, pg_ledger.recorder, pg_ledger.mapper, tables=ReadModelTables(schema)
        )
        try:
            barrier.wait()
            projector.setup()
        except BaseException as exc:
            errors.append(exc)
        finally:
            projector.close()

    threads = [threading.Thread(target=set_up) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
