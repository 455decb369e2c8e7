"""Credit grants with the in-memory store: drain order, expiry exactly once (caught up by the
cycle scheduler), voids, refunds into grants, snapshots, and ``ledger verify`` over all of it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest
from eventsourcing.domain import Snapshot

from ledger_service.audit.verify import verify
from ledger_service.domain.errors import (
    GrantAlreadyExists,
    GrantClosed,
    GrantNotFound,
    InvalidArgument,
    NotInFuture,
)
from ledger_service.domain.usage import Usage
from ledger_service.domain.wallet import Wallet
from ledger_service.service.ledger import LedgerApplication
from tests.fakes import InMemoryLedger

D = Decimal
SOURCE = "//messaging/whatsapp"
NOW = datetime.now(UTC)


@pytest.fixture
def ledger() -> Iterator[LedgerApplication]:
    app = InMemoryLedger()
    app.open_wallet(
        company_id="acme",
        currency="USD",
        included_quota="0",
        postpaid_limit="100",
        rate_card={"marketing": "1"},
        actor="t",
        idempotency_key="o",
    )
    app.link_sender(company_id="acme", waba_id="acme-w1", actor="t", idempotency_key="l")
    yield app
    app.close()


def grant(
    ledger: LedgerApplication,
    reference: str,
    amount: str,
    *,
    priority: int = 10,
    expires_in: timedelta | None = None,
) -> str:
    state = ledger.issue_grant(
        company_id="acme",
        amount=D(amount),
        reason="promo",
        reference=reference,
        priority=priority,
        expires_at=None if expires_in is None else NOW + expires_in,
        actor="op-a",
        idempotency_key=f"grant-{reference}",
    )
    return state["grant_id"]


def use(ledger: LedgerApplication, event_id: str, units: int) -> None:
    ledger.apply_usage(
        Usage(SOURCE, event_id, "acme", "acme-w1", "c1", "marketing", "delivered", units)
    )


def remaining(ledger: LedgerApplication) -> dict[str, Decimal]:
    return {g.reference: g.remaining for g in ledger.get_wallet("acme").grants.values()}


def fund(ledger: LedgerApplication, amount: str) -> None:
    ledger.credit_wallet(
        company_id="acme",
        amount=amount,
        bucket="prepaid",
        kind="adjustment",
        reference=f"paid:{amount}",
        actor="t",
        idempotency_key=f"t{amount}",
    )


def test_usage_drains_grants_by_priority_then_soonest_expiry_then_oldest(
    ledger: LedgerApplication,
) -> None:
    fund(ledger, "100")
    grant(ledger, "late-never", "5")  # priority 10, never expires, oldest
    grant(ledger, "late-soon", "5", expires_in=timedelta(days=2))
    grant(ledger, "late-sooner", "5", expires_in=timedelta(days=1))
    grant(ledger, "first", "5", priority=1, expires_in=timedelta(days=30))
    grant(ledger, "newer-never", "5")  # same as late-never but newer
    use(ledger, "m1", 7)
    assert remaining(ledger) == {
        "first": D(0), "late-sooner": D(3), "late-soon": D(5), "late-never": D(5),
        "newer-never": D(5),
    }  # fmt: skip
    use(ledger, "m2", 14)
    assert remaining(ledger) == {
        "first": D(0), "late-sooner": D(0), "late-soon": D(0), "late-never": D(0),
        "newer-never": D(4),
    }  # fmt: skip
    wallet = ledger.get_wallet("acme")
    assert (wallet.granted, wallet.prepaid, wallet.balance) == (D(4), D(100), D(104))


def test_grants_drain_after_included_and_before_prepaid() -> None:
    app = InMemoryLedger()
    app.open_wallet(
        company_id="acme", currency="USD", included_quota="5", postpaid_limit="10",
        rate_card={"marketing": "1"}, actor="t", idempotency_key="o",
    )  # fmt: skip
    app.link_sender(company_id="acme", waba_id="acme-w1", actor="t", idempotency_key="l")
    fund(app, "3")
    grant(app, "g", "4")
    use(app, "m1", 14)
    debit = [e for e in app.events.get(app.get_wallet("acme").id) if isinstance(e, Wallet.Debited)]
    split = debit[-1].split
    assert (split["included"], split["prepaid"], split["postpaid"], split["overage"]) == (
        D(5), D(3), D(2), D(0),
    )  # fmt: skip
    assert [v for k, v in split.items() if k.startswith("grant:")] == [D(4)]
    app.close()


def test_without_grants_a_debit_keeps_its_four_part_shape(ledger: LedgerApplication) -> None:
    fund(ledger, "10")
    use(ledger, "m1", 3)
    debit = [
        e for e in ledger.events.get(ledger.get_wallet("acme").id) if isinstance(e, Wallet.Debited)
    ]
    assert set(debit[-1].split) == {"included", "prepaid", "postpaid", "overage"}


def test_a_grant_expires_once_and_the_scheduler_catches_up(ledger: LedgerApplication) -> None:
    grant(ledger, "soon", "10", expires_in=timedelta(days=1))
    grant(ledger, "later", "10", expires_in=timedelta(days=3))
    grant(ledger, "never", "10")
    use(ledger, "m1", 4)  # from "soon"
    wallet_id = ledger.get_wallet("acme").id
    # Down for a week: one run catches up with both expiries (and nothing is due twice).
    a_week_later = NOW + timedelta(days=7)
    assert ledger.start_due_cycles([wallet_id], now=a_week_later, actor="cycles") >= 2
    assert ledger.start_due_cycles([wallet_id], now=a_week_later, actor="cycles") == 0
    wallet = ledger.get_wallet("acme")
    assert {g.reference: (g.status.value, g.remaining) for g in wallet.grants.values()} == {
        "soon": ("expired", D(0)),
        "later": ("expired", D(0)),
        "never": ("active", D(10)),
    }
    expiries = [
        (e.amount, e.counter_account)
        for e in ledger.events.get(wallet_id)
        if isinstance(e, Wallet.Debited) and e.kind == "expiry"
    ]
    assert expiries == [(D(6), "promotions"), (D(10), "promotions")]
    assert wallet.balance == D(10) - D(0)  # the grant left; usage of 4 came from "soon"
    assert verify(ledger).ok


def test_nothing_expires_before_its_time(ledger: LedgerApplication) -> None:
    grant(ledger, "soon", "10", expires_in=timedelta(days=1))
    wallet_id = ledger.get_wallet("acme").id
    ledger.start_due_cycles([wallet_id], now=NOW + timedelta(hours=23), actor="cycles")
    assert remaining(ledger) == {"soon": D(10)}


def test_void_takes_the_remainder_once(ledger: LedgerApplication) -> None:
    grant_id = grant(ledger, "g", "10")
    use(ledger, "m1", 3)
    voided = ledger.void_grant(
        company_id="acme", grant_id=UUID(grant_id), actor="op-b", idempotency_key="v1"
    )
    assert (voided["status"], voided["remaining"]) == ("voided", "0")
    assert ledger.get_wallet("acme").balance == D(0)
    with pytest.raises(GrantClosed):
        ledger.void_grant(
            company_id="acme", grant_id=UUID(grant_id), actor="op-b", idempotency_key="v2"
        )
    with pytest.raises(GrantNotFound):
        ledger.void_grant(
            company_id="acme", grant_id=UUID(int=1), actor="op-b", idempotency_key="v3"
        )
    assert verify(ledger).ok


def test_one_grant_per_reference_and_checked_input(ledger: LedgerApplication) -> None:
    grant(ledger, "g", "10")
    with pytest.raises(GrantAlreadyExists):
        ledger.issue_grant(
            company_id="acme", amount=D(5), reason="again", reference="g", actor="op",
            idempotency_key="other-key",
        )  # fmt: skip
    with pytest.raises(NotInFuture):
        grant(ledger, "past", "1", expires_in=timedelta(seconds=-1))
    with pytest.raises(InvalidArgument):
        grant(ledger, "prio", "1", priority=-1)
    assert ledger.get_wallet("acme").granted == D(10)


def test_a_refund_gives_a_grant_back_or_expires_it_again_if_closed(
    ledger: LedgerApplication,
) -> None:
    fund(ledger, "100")
    open_grant = grant(ledger, "open", "5", priority=1)
    closing = grant(ledger, "closing", "5", priority=2)
    use(ledger, "m1", 8)  # 5 from "open", 3 from "closing"
    ledger.void_grant(company_id="acme", grant_id=UUID(closing), actor="op", idempotency_key="v")
    before = ledger.get_wallet("acme").balance
    refund = ledger.refund_usage(
        company_id="acme", usage_source=SOURCE, usage_id="m1", reason="failed",
        actor="op", idempotency_key="r",
    )  # fmt: skip
    assert refund["amount"] == "8"
    wallet = ledger.get_wallet("acme")
    assert wallet.grants[open_grant].remaining == D(5)
    assert wallet.grants[closing].remaining == D(0)  # given back and taken again at once
    assert wallet.balance - before == D(5)
    assert verify(ledger).ok


def test_grants_survive_a_snapshot(ledger: LedgerApplication) -> None:
    grant(ledger, "g", "10", expires_in=timedelta(days=3), priority=3)
    use(ledger, "m1", 4)
    wallet = ledger.get_wallet("acme")
    stored = ledger.mapper.to_stored_event(Snapshot.take(wallet))
    again = ledger.mapper.to_domain_event(stored).mutate(None)
    assert again.grants == wallet.grants
    assert again.granted == D(6)


def test_verify_reports_a_grant_closed_early_with_money_left(ledger: LedgerApplication) -> None:
    grant_id = grant(ledger, "g", "10", expires_in=timedelta(days=3))
    assert verify(ledger).ok
    # A bug that closes a grant without taking its remainder, before its time.
    wallet = ledger.get_wallet("acme")
    wallet._grant_closed(
        grant_id=grant_id, status="expired", remainder=D(0), as_of=NOW, actor="bug"
    )
    ledger.save(wallet)
    problems = "\n".join(verify(ledger).problems)
    assert "closed expired with 10" in problems
    assert "expired before its expires_at" in problems
    assert "is closed and holds 10" in problems


def test_grants_count_in_the_balance_that_alerts_watch(ledger: LedgerApplication) -> None:
    wallet = ledger.get_wallet("acme")
    wallet.configure_alerts(
        low_balance_threshold=D(20), low_balance_percent=D(0), burn_limit_24h=None, actor="op"
    )
    ledger.save(wallet)
    use(ledger, "m1", 5)  # below zero and below the threshold: both raised
    assert set(ledger.get_wallet("acme").triggered) == {"balance_below_zero", "low_balance_warning"}
    grant(ledger, "g", "30")  # balance 25: both recover
    assert ledger.get_wallet("acme").triggered == []
    use(ledger, "m2", 10)  # drawn from the grant: balance 15, low again
    assert ledger.get_wallet("acme").triggered == ["low_balance_warning"]
