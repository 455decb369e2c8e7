"""The ledger on a real PostgreSQL: concurrency, exactly-once and atomic idempotency records."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from ledger_service.bootstrap import build_ledger
from ledger_service.config import Settings
from ledger_service.domain.accounts import PROMOTIONS
from ledger_service.domain.books import trial_balance
from ledger_service.domain.errors import InvalidTransition, LedgerError
from ledger_service.domain.usage import Usage, UsageOutcome
from ledger_service.domain.wallet import CreditBucket, CreditKind, Wallet
from ledger_service.service.ledger import LedgerApplication
from ledger_service.service.runner import CommandRecord

pytestmark = pytest.mark.integration
D = Decimal


def open_wallet(ledger: LedgerApplication, company: str, **kwargs: Any) -> None:
    params: dict[str, Any] = {
        "currency": "USD",
        "postpaid_limit": "100",
        "included_quota": "500",
        "rate_card": {"marketing": "1"},
    } | kwargs
    ledger.open_wallet(company_id=company, actor="op", idempotency_key="open", **params)


def invoiced_topup(ledger: LedgerApplication, company: str, amount: str) -> UUID:
    topup_id = UUID(
        ledger.request_topup(
            company_id=company, amount=amount, currency="USD", actor="tenant", idempotency_key="req"
        )["topup_id"]
    )
    ledger.approve_topup(topup_id=topup_id, actor="op", idempotency_key="approve")
    return topup_id


def run_at_once(count: int, action: Callable[[int], Any]) -> list[Any]:
    """Start ``count`` threads behind a barrier so they really race."""
    barrier = threading.Barrier(count)

    def go(i: int) -> Any:
        barrier.wait()
        try:
            return action(i)
        except LedgerError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(go, range(count)))


def test_twenty_threads_marking_one_topup_paid_credit_once(
    pg_ledger: LedgerApplication,
    company_id: str,
) -> None:
    open_wallet(pg_ledger, company_id, included_quota="0")
    topup_id = invoiced_topup(pg_ledger, company_id, "250")

    outcomes = run_at_once(
        20,
        lambda i: pg_ledger.mark_topup_paid(
            topup_id=topup_id, payment_reference=f"bank-{i}", actor="op", idempotency_key=f"pay-{i}"
        ),
    )

    successes = [o for o in outcomes if isinstance(o, dict)]
    assert len(successes) == 1, outcomes
    assert all(isinstance(o, InvalidTransition) for o in outcomes if not isinstance(o, dict))
    wallet = pg_ledger.get_wallet(company_id)
    credits = [
        e
        for e in pg_ledger.events.get(wallet.id)
        if isinstance(e, Wallet.Credited) and e.kind == "topup"
    ]
    assert len(credits) == 1
    assert wallet.prepaid == D(250)


def test_a_save_under_a_key_already_recorded_writes_nothing(
    pg_ledger: LedgerApplication, company_id: str
) -> None:
    """The race the runner cannot see: a request that looked the key up before another one
    committed it, then decided on the state that one left. Its save must fail as a whole."""
    open_wallet(pg_ledger, company_id)
    pg_ledger.credit_wallet(
        company_id=company_id, amount="5", kind="grant", reference="g", actor="op",
        idempotency_key="grant-1",
    )  # fmt: skip
    wallet = pg_ledger.get_wallet(company_id)
    version = wallet.version
    wallet.credit(
        D(5), bucket=CreditBucket.PREPAID, kind=CreditKind.GRANT, counter_account=PROMOTIONS,
        reference="g", actor="op",
    )  # fmt: skip
    with pytest.raises(IntegrityError):
        pg_ledger.save(wallet, command=CommandRecord(company_id, "grant-1", "same", {}))
    pg_ledger.evict([wallet.id])
    assert pg_ledger.get_wallet(company_id).version == version, "no event was committed"


def test_twenty_threads_with_one_key_and_no_domain_guard_write_once(
    pg_ledger: LedgerApplication, company_id: str
) -> None:
    open_wallet(pg_ledger, company_id, included_quota="0")
    outcomes = run_at_once(
        20,
        lambda _i: pg_ledger.credit_wallet(
            company_id=company_id, amount="5", kind="grant", reference="g", actor="op",
            idempotency_key="grant-1",
        ),
    )  # fmt: skip
    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert len({o["position"] for o in outcomes}) == 1
    assert pg_ledger.get_wallet(company_id).prepaid == D(5)


def test_retried_mark_paid_with_the_same_key_is_answered_from_the_record(
    pg_ledger: LedgerApplication,
    company_id: str,
) -> None:
    open_wallet(pg_ledger, company_id, included_quota="0")
    topup_id = invoiced_topup(pg_ledger, company_id, "10")
    outcomes = run_at_once(
        8,
        lambda _i: pg_ledger.mark_topup_paid(
            topup_id=topup_id, payment_reference="bank-1", actor="op", idempotency_key="pay"
        ),
    )
    # One writes; the others either lose the race and then read the record, or read it.
    assert all(o == outcomes[0] for o in outcomes), outcomes
    assert pg_ledger.get_wallet(company_id).prepaid == D(10)


@pytest.fixture
def second_ledger(settings: Settings, database_url: str) -> Iterator[LedgerApplication]:
    """A separate application instance: its own connection pool and aggregate cache."""
    ledger = build_ledger(settings, database_url)
    yield ledger
    ledger.close()


def test_two_senders_debiting_one_pool_concurrently_never_over_deduct(
    pg_ledger: LedgerApplication,
    second_ledger: LedgerApplication,
    company_id: str,
) -> None:
    open_wallet(pg_ledger, company_id, included_quota="30", postpaid_limit="20")
    for sender in ("w-a", "w-b"):
        pg_ledger.link_sender(
            company_id=company_id,
            waba_id=f"{company_id}-{sender}",
            actor="op",
            idempotency_key=f"link-{sender}",
        )
    instances = [pg_ledger, second_ledger]
    per_sender = 40

    def send(i: int) -> list[UsageOutcome]:
        ledger, sender = instances[i % 2], ("w-a", "w-b")[i % 2]
        return [
            ledger.apply_usage(
                Usage(
                    source="//test",
                    event_id=f"{sender}-{n}",
                    company_id=company_id,
                    waba_id=f"{company_id}-{sender}",
                    conversation_id="c",
                    category="marketing",
                    status="delivered",
                    units=1,
                )
            )
            for n in range(per_sender)
        ]

    outcomes = run_at_once(2, send)
    assert all(o == [UsageOutcome.APPLIED] * per_sender for o in outcomes), outcomes

    wallet = pg_ledger.get_wallet(company_id)
    debits = [e for e in pg_ledger.events.get(wallet.id) if isinstance(e, Wallet.Debited)]
    assert len(debits) == 2 * per_sender
    splits = {
        k: sum((e.split[k] for e in debits), D(0))
        for k in ("included", "prepaid", "postpaid", "overage")
    }
    # 80 units against 30 included, 0 prepaid and 20 postpaid credit: 30 overage, recorded.
    assert splits == {"included": D(30), "prepaid": D(0), "postpaid": D(20), "overage": D(30)}
    assert wallet.balance == D(-50)
    totals = trial_balance(pg_ledger.events.get(wallet.id))
    assert totals[wallet.account] == wallet.balance


def test_the_same_usage_event_applied_from_two_instances_changes_balance_once(
    pg_ledger: LedgerApplication,
    second_ledger: LedgerApplication,
    company_id: str,
) -> None:
    open_wallet(pg_ledger, company_id)
    pg_ledger.link_sender(
        company_id=company_id, waba_id=f"{company_id}-w", actor="op", idempotency_key="link"
    )
    usage = Usage(
        source="//test",
        event_id="dup-1",
        company_id=company_id,
        waba_id=f"{company_id}-w",
        conversation_id="c",
        category="marketing",
        status="delivered",
        units=7,
    )
    outcomes = run_at_once(6, lambda i: (pg_ledger, second_ledger)[i % 2].apply_usage(usage))
    assert sorted(o.value for o in outcomes) == ["applied"] + ["duplicate"] * 5
    assert pg_ledger.get_wallet(company_id).balance == D(493)


def test_idempotency_record_is_written_only_with_the_events(
    pg_ledger: LedgerApplication,
    company_id: str,
    database_url: str,
) -> None:
    open_wallet(pg_ledger, company_id)
    with psycopg.connect(database_url) as conn:
        # Make the event insert fail after the key would have been claimed.
        conn.execute(
            "CREATE OR REPLACE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'refused by test'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER test_refuse BEFORE INSERT ON ledger_events FOR EACH ROW "
            "WHEN (NEW.originator_version = 1 AND NEW.topic LIKE '%TopupRequest%') "
            "EXECUTE FUNCTION test_refuse()"
        )
    try:
        with pytest.raises(Exception, match="refused by test"):
            pg_ledger.request_topup(
                company_id=company_id,
                amount="5",
                currency="USD",
                actor="t",
                idempotency_key="atomic",
            )
    finally:
        with psycopg.connect(database_url) as conn:
            conn.execute("DROP TRIGGER test_refuse ON ledger_events")
    assert pg_ledger.command_store.select_command(company_id, "atomic") is None
    result = pg_ledger.request_topup(
        company_id=company_id, amount="5", currency="USD", actor="t", idempotency_key="atomic"
    )
    assert result["status"] == "pending"
    assert pg_ledger.command_store.select_command(company_id, "atomic") is not None


def test_wallets_load_from_snapshots_after_many_events(
    pg_ledger: LedgerApplication,
    second_ledger: LedgerApplication,
    company_id: str,
) -> None:
    open_wallet(pg_ledger, company_id, included_quota="0", postpaid_limit="10000")
    waba = f"{company_id}-w"
    pg_ledger.link_sender(company_id=company_id, waba_id=waba, actor="op", idempotency_key="l")
    wallet = pg_ledger.get_wallet(company_id)
    for n in range(LedgerApplication.snapshotting_intervals[Wallet] + 10):
        wallet.record_usage(
            D(1),
            usage_reference=f"r{n}",
            sender_id=waba,
            conversation_id="c",
            category="marketing",
            units=1,
            unit_price=D(1),
            actor="test",
        )
    pg_ledger.save(wallet)
    snapshots = list(pg_ledger.snapshots.get(wallet.id)) if pg_ledger.snapshots else []
    assert snapshots, "no snapshot was taken"
    reloaded = second_ledger.get_wallet(company_id)
    assert reloaded.senders == {waba}
    interval = LedgerApplication.snapshotting_intervals[Wallet]
    assert reloaded.balance == wallet.balance == -D(interval + 10)
