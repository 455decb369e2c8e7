"""Holds with the in-memory store: reserve against available, settle by the usage event (same
save), release, expire once (the cycle scheduler's runs), refusals, snapshots, verify."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Snapshot

from ledger_service.audit.verify import verify
from ledger_service.domain.errors import (
    HoldConflict,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientAvailableBalance,
    InvalidArgument,
    PriceMismatch,
    SenderNotLinked,
    UnknownCategory,
)
from ledger_service.domain.holds import Hold
from ledger_service.domain.usage import Usage
from ledger_service.domain.wallet import Wallet
from ledger_service.service.hold_batcher import HoldBatcher
from ledger_service.service.holds import PlaceHold
from ledger_service.service.ledger import LedgerApplication, snapshot_interval
from tests.fakes import InMemoryLedger

D = Decimal
SOURCE = "//messaging/whatsapp"


@pytest.fixture
def ledger() -> Iterator[LedgerApplication]:
    app = InMemoryLedger()
    app.open_wallet(
        company_id="acme", currency="USD", included_quota="0", postpaid_limit="5",
        rate_card={"marketing": "1", "utility": "0.5"}, actor="t", idempotency_key="o",
    )  # fmt: skip
    app.link_sender(company_id="acme", waba_id="acme-w1", actor="t", idempotency_key="l")
    app.credit_wallet(
        company_id="acme", amount="5", kind="adjustment", reference="funds", actor="t",
        idempotency_key="f",
    )  # fmt: skip
    yield app
    app.close()


def hold(
    ledger: LedgerApplication, reference: str, units: int = 2, **kwargs: Any
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "company_id": "acme", "waba_id": "acme-w1", "category": "marketing", "units": units,
        "reference": reference, "actor": "sender", "idempotency_key": f"hold:{reference}",
    } | kwargs  # fmt: skip
    return dict(ledger.place_hold(**params))


def use(ledger: LedgerApplication, event_id: str, units: int, status: str = "delivered") -> None:
    ledger.apply_usage(Usage(SOURCE, event_id, "acme", "acme-w1", "c", "marketing", status, units))


def closed(ledger: LedgerApplication) -> list[tuple[str, str]]:
    wallet = ledger.get_wallet("acme")
    return [
        (e.reference, e.status)
        for e in ledger.events.get(wallet.id)
        if isinstance(e, Wallet.HoldClosed)
    ]


def test_holds_reserve_available_and_are_refused_beyond_it(ledger: LedgerApplication) -> None:
    first = hold(ledger, "m1", units=6)  # 6 of the 10 available (5 funds + 5 credit)
    assert (first["amount"], first["available"], first["status"]) == ("6", "4", "active")
    wallet = ledger.get_wallet("acme")
    assert (wallet.held, wallet.balance, wallet.available) == (D(6), D(5), D(4))
    with pytest.raises(InsufficientAvailableBalance):
        hold(ledger, "m2", units=5)
    assert hold(ledger, "m2", units=4)["available"] == "0"
    assert ledger.get_wallet("acme").held == D(10)


def test_a_repeat_is_answered_and_another_body_for_the_reference_conflicts(
    ledger: LedgerApplication,
) -> None:
    first = hold(ledger, "m1")
    assert hold(ledger, "m1") == first  # the same key: the stored answer
    assert hold(ledger, "m1", idempotency_key="other")["hold_id"] == first["hold_id"]
    with pytest.raises(IdempotencyConflict):
        hold(ledger, "m1", units=3)
    with pytest.raises(HoldConflict):
        hold(ledger, "m1", units=3, idempotency_key="third")
    assert ledger.get_wallet("acme").held == D(2)


def test_refusals_name_the_reason(ledger: LedgerApplication) -> None:
    with pytest.raises(UnknownCategory):
        hold(ledger, "m1", category="authentication")
    with pytest.raises(SenderNotLinked):
        hold(ledger, "m2", waba_id="elsewhere")
    with pytest.raises(InvalidArgument):
        hold(ledger, "m3", ttl_s=3601)
    with pytest.raises(InvalidArgument):
        hold(ledger, "m4", units=0)
    assert ledger.get_wallet("acme").holds == {}


def test_the_usage_event_settles_its_hold_in_the_same_save(ledger: LedgerApplication) -> None:
    hold(ledger, "m1", units=2)
    hold(ledger, "m2", units=2, source="//elsewhere")
    use(ledger, "m1", units=3)  # more than held: charged in full, the hold released
    use(ledger, "m2", units=1)  # the hold expects another source: not settled by this one
    wallet = ledger.get_wallet("acme")
    assert closed(ledger) == [("m1", "settled")]
    assert (wallet.held, wallet.balance) == (D(2), D(1))
    events = list(ledger.events.get(wallet.id))
    settle = next(i for i, e in enumerate(events) if isinstance(e, Wallet.HoldClosed))
    assert isinstance(events[settle + 1], Wallet.Debited)  # then the usage, same save
    assert verify(ledger).ok


def test_a_failed_usage_event_releases_its_hold_and_charges_nothing(
    ledger: LedgerApplication,
) -> None:
    hold(ledger, "m1", units=4)
    use(ledger, "m1", units=4, status="failed")
    wallet = ledger.get_wallet("acme")
    assert closed(ledger) == [("m1", "released")]
    assert (wallet.held, wallet.balance) == (D(0), D(5))


def test_release_and_expiry_close_a_hold_once(ledger: LedgerApplication) -> None:
    released = hold(ledger, "m1")
    hold(ledger, "m2", ttl_s=60)
    hold(ledger, "m3", ttl_s=600)
    out = ledger.release_hold(
        company_id="acme", hold_id=UUID(released["hold_id"]), actor="sender", idempotency_key="r"
    )
    assert out["status"] == "released"
    with pytest.raises(HoldNotFound):
        ledger.release_hold(
            company_id="acme", hold_id=UUID(released["hold_id"]), actor="s", idempotency_key="r2"
        )
    wallet_id = ledger.get_wallet("acme").id
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert ledger.start_due_cycles([wallet_id], now=later, actor="cycles") == 1
    assert ledger.start_due_cycles([wallet_id], now=later, actor="cycles") == 0
    assert closed(ledger) == [("m1", "released"), ("m2", "expired")]
    use(ledger, "m2", units=2)  # after its hold expired: charged as any usage
    assert ledger.get_wallet("acme").held == D(2)  # m3 only
    assert ledger.get_wallet("acme").balance == D(3)
    assert verify(ledger).ok


def test_holds_survive_a_snapshot(ledger: LedgerApplication) -> None:
    hold(ledger, "m1", source=SOURCE)
    wallet = ledger.get_wallet("acme")
    again = ledger.mapper.to_domain_event(ledger.mapper.to_stored_event(Snapshot.take(wallet)))
    loaded = again.mutate(None)
    assert (loaded.holds, loaded.held) == (wallet.holds, D(2))


def test_verify_reports_a_hold_closed_twice(ledger: LedgerApplication) -> None:
    placed = hold(ledger, "m1")
    use(ledger, "m1", units=2)
    wallet = ledger.get_wallet("acme")
    # A bug that closes the settled hold again (the aggregate refuses: forge the state).
    wallet.holds["m1"] = ledger.get_wallet("acme").holds.get("m1") or _hold_of(placed)
    wallet._hold_closed(
        hold_id=placed["hold_id"], reference="m1", status="released", amount=D(2),
        as_of=datetime.now(UTC), actor="bug",
    )  # fmt: skip
    ledger.save(wallet)
    problems = "\n".join(verify(ledger).problems)
    assert "closed released while not active" in problems


def _hold_of(state: dict[str, Any]) -> Hold:
    return Hold(
        state["hold_id"], state["reference"], None, state["waba_id"], state["category"],
        state["units"], D(state["amount"]), datetime.fromisoformat(state["expires_at"]),
        datetime.now(UTC), "sender",
    )  # fmt: skip


def test_a_refund_finds_the_charge_of_usage_that_settled_a_hold(ledger: LedgerApplication) -> None:
    # The hold's closing comes first in the save: the charge is the event after it.
    hold(ledger, "m1", units=2)
    use(ledger, "m1", units=2)
    refund = ledger.refund_usage(
        company_id="acme", usage_source=SOURCE, usage_id="m1", reason="undelivered",
        actor="op", idempotency_key="rf",
    )  # fmt: skip
    assert refund["amount"] == "2"
    assert ledger.get_wallet("acme").balance == D(5)
    assert verify(ledger).ok


def test_a_refused_usage_event_leaves_its_hold_active(ledger: LedgerApplication) -> None:
    hold(ledger, "m1", units=2)
    mispriced = Usage(SOURCE, "m1", "acme", "acme-w1", "c", "marketing", "delivered", 2,
                      unit_price=D("0.01"))  # fmt: skip
    with pytest.raises(PriceMismatch):
        ledger.apply_usage(mispriced)
    assert list(ledger.get_wallet("acme").holds) == ["m1"]


def test_a_batcher_commits_concurrent_holds_in_groups_without_over_reserving(
    ledger: LedgerApplication,
) -> None:
    batcher = HoldBatcher(ledger, window_s=0.02)
    batcher.start()

    def place(i: int) -> object:
        command = PlaceHold(
            company_id="acme", waba_id="acme-w1", category="marketing", units=1,
            reference=f"m{i}", actor="sender", idempotency_key=f"hold:m{i}",
        )  # fmt: skip
        try:
            return batcher.submit(command).result(timeout=10)
        except InsufficientAvailableBalance as exc:
            return exc

    with ThreadPoolExecutor(max_workers=25) as pool:
        outcomes = list(pool.map(place, range(25)))
    granted = [o for o in outcomes if isinstance(o, dict)]
    assert len(granted) == 10  # 5 funds + 5 credit, 1 each
    assert sum(isinstance(o, InsufficientAvailableBalance) for o in outcomes) == 15
    assert batcher.groups < 25  # saved together, not one by one
    first = granted[0]
    again = place(int(first["reference"][1:]))  # the same request: the same hold, nothing new
    batcher.close()
    assert isinstance(again, dict)
    assert again["hold_id"] == first["hold_id"]
    wallet = ledger.get_wallet("acme")
    assert (wallet.held, wallet.available) == (D(10), D(0))
    assert verify(ledger).ok


def test_the_batcher_decides_on_what_other_writers_saved_meanwhile(
    ledger: LedgerApplication,
) -> None:
    """The batcher keeps wallets between groups; each group brings them up to date first."""
    other = InMemoryLedger(shared_recorder=ledger.recorder)  # type: ignore[arg-type]
    batcher = HoldBatcher(ledger, window_s=0.001)
    batcher.start()

    def place(reference: str, units: int) -> object:
        command = PlaceHold(
            company_id="acme", waba_id="acme-w1", category="marketing", units=units,
            reference=reference, actor="sender", idempotency_key=f"hold:{reference}",
        )  # fmt: skip
        try:
            return batcher.submit(command).result(timeout=10)
        except InsufficientAvailableBalance as exc:
            return exc

    try:
        assert isinstance(place("m0", 2), dict)  # available 10 -> 8
        other.apply_usage(Usage(SOURCE, "u1", "acme", "acme-w1", "c", "marketing", "delivered", 8))
        assert isinstance(place("m1", 1), InsufficientAvailableBalance)  # 0 left
        other.credit_wallet(
            company_id="acme", amount="5", kind="adjustment", reference="more", actor="t",
            idempotency_key="more",
        )  # fmt: skip
        assert isinstance(place("m2", 5), dict)
    finally:
        batcher.close()
        other.close()
    ledger.evict([ledger.get_wallet("acme").id])
    wallet = ledger.get_wallet("acme")
    assert (wallet.held, wallet.available) == (D(7), D(0))
    assert verify(ledger).ok


def test_a_wallet_with_many_holds_is_snapshotted_less_often() -> None:
    """The snapshot interval doubles past the number of holds and grants a wallet carries, so
    a pool with thousands of active holds is not re-serialised every 200 events."""
    assert [snapshot_interval(200, n) for n in (0, 200, 201, 5000)] == [200, 200, 400, 6400]
    app = InMemoryLedger()
    app.open_wallet(
        company_id="big", currency="USD", included_quota="0", postpaid_limit="1000000",
        rate_card={"marketing": "1"}, actor="t", idempotency_key="o",
    )  # fmt: skip
    app.link_sender(company_id="big", waba_id="big-w1", actor="t", idempotency_key="l")
    for i in range(650):  # one event each: versions 3..652, holds 1..650
        hold(app, f"m{i}", units=1, company_id="big", waba_id="big-w1")
    wallet = app.get_wallet("big")
    snapshots = [s.originator_version for s in app.snapshots.get(wallet.id)]  # type: ignore[union-attr]
    # At 200 it carried 198 holds (interval 200), at 400 398 (interval 400); at 600 it carried
    # 598 holds, so its interval was 800 and no snapshot was taken.
    assert snapshots == [200, 400]
    app.close()
