"""Wallet policies: alerts fire once per crossing, caps once per day, cycles once per boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ledger_service.domain import accounts
from ledger_service.domain.books import trial_balance
from ledger_service.domain.errors import InvalidArgument
from ledger_service.domain.policies import CycleAnchor, check_cycle_anchor, check_spending_caps
from ledger_service.domain.wallet import CreditBucket, CreditKind, PoolMode, Wallet

D = Decimal


class Clock:
    """The time the test passes to the wallet's commands (``at``): opening and usage."""

    def __init__(self, now: datetime) -> None:
        self.now = now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 22, 10, 0, tzinfo=UTC))


def new_wallet(
    *, included: str = "0", prepaid: str = "100", limit: str = "50", at: datetime | None = None
) -> Wallet:
    wallet = Wallet.open(
        company_id="acme",
        currency="USD",
        mode=PoolMode.SHARED,
        postpaid_limit=D(limit),
        included_quota=D(included),
        rate_card={"marketing": D("1")},
        actor="op",
        at=at,
    )
    wallet.link_sender("w1", actor="op")
    if D(included):
        credit(wallet, included, CreditBucket.INCLUDED)
    if D(prepaid):
        credit(wallet, prepaid)
    return wallet


def credit(wallet: Wallet, amount: str, bucket: CreditBucket = CreditBucket.PREPAID) -> None:
    wallet.credit(
        D(amount),
        bucket=bucket,
        kind=CreditKind.GRANT,
        counter_account=accounts.PROMOTIONS,
        reference="t",
        actor="op",
    )


def use(
    wallet: Wallet,
    amount: str,
    *,
    category: str = "marketing",
    units: int = 1,
    at: datetime | None = None,
) -> None:
    wallet.record_usage(
        D(amount),
        usage_reference="u",
        sender_id="w1",
        conversation_id="c",
        category=category,
        units=units,
        unit_price=D(amount),
        actor="ingestion",
        at=at,
    )


def alerts_of(events: list[Any]) -> list[str]:
    names = []
    for event in events:
        kind = type(event).__name__
        if kind == "AlertRaised":
            names.append(event.alert)
        elif kind == "TriggersRearmed":
            names.append("rearmed:" + ",".join(event.triggers))
        elif kind == "AutoTopupTriggered":
            names.append("auto_topup")
    return names


def replayed(events: list[Any]) -> Wallet:
    wallet: Any = None
    for event in events:
        wallet = event.mutate(wallet)
    assert isinstance(wallet, Wallet)
    return wallet


def test_balance_alerts_fire_once_per_crossing_and_rearm_after_recovery(clock: Clock) -> None:
    wallet = new_wallet()  # funded 100: the default 40% line is 40
    wallet.collect_events()
    use(wallet, "50")
    use(wallet, "15")  # 35 < 40
    use(wallet, "1")  # still low: no second warning
    use(wallet, "40")  # -6: below zero
    use(wallet, "50")  # available -56 + ... = 50 - 106 < 0: overage
    use(wallet, "1")
    assert alerts_of(wallet.collect_events()) == [
        "low_balance_warning",
        "balance_below_zero",
        "credit_limit_exceeded",
    ]
    credit(wallet, "100")  # balance -57 + 100 = 43: above 0 and above the (raised) line?
    events = wallet.collect_events()
    # Funding is now 200, so the line is 80: still low, but no longer below zero or in overage.
    assert alerts_of(events) == ["rearmed:balance_below_zero,credit_limit_exceeded"]
    credit(wallet, "100")  # 143 >= 120 (40% of 300)
    assert alerts_of(wallet.collect_events()) == ["rearmed:low_balance_warning"]
    use(wallet, "30")  # 113 < 120: a new crossing warns again
    assert alerts_of(wallet.collect_events()) == ["low_balance_warning"]


def test_once_per_cycle_warns_once_a_cycle_and_again_in_the_next(clock: Clock) -> None:
    clock.now = datetime(2026, 11, 10, tzinfo=UTC)
    wallet = new_wallet(prepaid="100", at=clock.now)
    wallet.configure_alerts(
        low_balance_threshold=D("20"),
        low_balance_percent=D(40),
        burn_limit_24h=None,
        renotify="once_per_cycle",
        actor="op",
    )
    history: list[Any] = []

    def said() -> list[str]:
        events = wallet.collect_events()
        history.extend(events)
        return alerts_of(events)

    use(wallet, "85")  # 15 < 20
    use(wallet, "20")  # -5 < 0
    credit(wallet, "100")  # 95: both clear
    assert said() == [
        "low_balance_warning",
        "balance_below_zero",
        "rearmed:low_balance_warning,balance_below_zero",
    ]
    use(wallet, "80")  # 15: a second crossing in the same cycle raises nothing
    use(wallet, "20")  # -5: nor does going below zero again
    credit(wallet, "100")  # 95: and nothing was in force to re-arm
    use(wallet, "80")  # 15: a third crossing, still nothing
    assert said() == []
    assert wallet.warned_this_cycle == ["balance_below_zero", "low_balance_warning"]

    assert wallet.start_due_cycles(datetime(2026, 12, 2, tzinfo=UTC), actor="cycles") == 1
    assert said() == ["low_balance_warning"], "a new cycle warns"
    use(wallet, "20")  # -5: the first time below zero this cycle
    assert said() == ["balance_below_zero"]
    assert vars(replayed(history)) == vars(wallet)


def test_absolute_threshold_and_replay_reproduces_the_state(clock: Clock) -> None:
    wallet = new_wallet()
    wallet.configure_alerts(
        low_balance_threshold=D("10"), low_balance_percent=D(40), burn_limit_24h=None, actor="op"
    )
    use(wallet, "85")
    use(wallet, "6")  # 9 < 10
    use(wallet, "1")
    events = wallet.collect_events()
    assert alerts_of(events) == ["low_balance_warning"]
    again = replayed(events)
    assert vars(again) == vars(wallet)


def test_spending_cap_fires_once_a_day_and_blocks_the_category_that_day(clock: Clock) -> None:
    wallet = new_wallet(prepaid="1000", at=clock.now)
    wallet.change_spending_caps({"marketing": {"units": 3}}, actor="op")
    wallet.collect_events()
    for _ in range(5):
        use(wallet, "1", at=clock.now)
    events = wallet.collect_events()
    assert alerts_of(events) == ["spending_cap_reached"]
    assert wallet.blocked == {"marketing": "2026-11-22"}
    clock.now += timedelta(days=1)
    use(wallet, "1", at=clock.now)
    assert wallet.blocked == {}
    use(wallet, "1", at=clock.now)
    use(wallet, "1", at=clock.now)
    assert alerts_of(wallet.collect_events()) == ["spending_cap_reached"]
    assert wallet.blocked == {"marketing": "2026-11-23"}


def test_amount_cap_counts_in_the_wallet_time_zone(clock: Clock) -> None:
    wallet = new_wallet(prepaid="1000", at=clock.now)
    wallet.change_cycle_anchor(check_cycle_anchor(1, "00:00", "America/New_York"), actor="op")
    wallet.change_spending_caps({"marketing": {"amount": "5"}}, actor="op")
    clock.now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # still the 22nd in New York
    use(wallet, "5", at=clock.now)
    assert wallet.blocked == {"marketing": "2026-11-22"}


def test_rapid_burn_over_a_sliding_24_hours(clock: Clock) -> None:
    wallet = new_wallet(prepaid="1000", at=clock.now)
    wallet.configure_alerts(
        low_balance_threshold=D("0"), low_balance_percent=D(40), burn_limit_24h=D("20"), actor="op"
    )
    wallet.collect_events()
    for _ in range(3):
        use(wallet, "8", at=clock.now)
        clock.now += timedelta(hours=10)
    # 8 + 8 + 8 = 24 > 20 within 24 h (hours 0, 10, 20).
    assert alerts_of(wallet.collect_events()) == ["rapid_burn"]
    clock.now += timedelta(hours=20)  # the first two fall out of the window
    use(wallet, "1", at=clock.now)
    assert alerts_of(wallet.collect_events()) == ["rearmed:rapid_burn"]


def test_auto_topup_triggers_once_per_crossing(clock: Clock) -> None:
    wallet = new_wallet()
    wallet.configure_auto_topup(
        enabled=True, trigger_balance=D("30"), amount=D("200"), auto_approve=True, actor="op"
    )
    wallet.collect_events()
    use(wallet, "75")
    use(wallet, "5")
    events = [e for e in wallet.collect_events() if type(e).__name__ == "AutoTopupTriggered"]
    assert [(e.amount, e.auto_approve) for e in events] == [(D("200"), True)]
    credit(wallet, "200")
    use(wallet, "200")
    assert "auto_topup" in alerts_of(wallet.collect_events())


def test_cycles_expire_and_grant_exactly_once_and_catch_up_in_order(clock: Clock) -> None:
    clock.now = datetime(2026, 9, 10, tzinfo=UTC)
    wallet = new_wallet(included="100", prepaid="0", at=clock.now)
    use(wallet, "30", at=clock.now)
    assert wallet.cycle_start == datetime(2026, 9, 1, tzinfo=UTC)
    wallet.collect_events()
    later = datetime(2026, 11, 22, tzinfo=UTC)  # two boundaries missed: Oct 1 and Nov 1
    clock.now = later
    assert wallet.start_due_cycles(later, actor="cycles") == 2
    assert wallet.start_due_cycles(later, actor="cycles") == 0
    events = wallet.collect_events()
    moves = [
        (type(e).__name__, e.kind, e.amount, e.reference)
        for e in events
        if type(e).__name__ in ("Credited", "Debited")
    ]
    assert moves == [
        ("Debited", "expiry", D("70"), "included-quota:expired:2026-10-01T00:00:00+00:00"),
        ("Credited", "grant", D("100"), "included-quota:2026-10-01T00:00:00+00:00"),
        ("Debited", "expiry", D("100"), "included-quota:expired:2026-11-01T00:00:00+00:00"),
        ("Credited", "grant", D("100"), "included-quota:2026-11-01T00:00:00+00:00"),
    ]
    assert wallet.included == D("100")
    assert wallet.cycle_start == datetime(2026, 11, 1, tzinfo=UTC)
    assert sum(trial_balance(events).values()) == 0


def test_cycle_anchor_in_a_time_zone() -> None:
    anchor = check_cycle_anchor(15, "06:30", "Asia/Kolkata")
    start = anchor.cycle_start_at(datetime(2026, 11, 22, tzinfo=UTC))
    assert start == datetime(2026, 11, 15, 1, 0, tzinfo=UTC)
    assert anchor.next_boundary(start) == datetime(2026, 12, 15, 1, 0, tzinfo=UTC)
    assert CycleAnchor().boundaries_due(start, start) == []


@pytest.mark.parametrize(
    ("day", "at", "zone"),
    [(0, "00:00", "UTC"), (29, "00:00", "UTC"), (1, "24:00", "UTC"), (1, "00:00", "Mars/Base")],
)
def test_bad_cycle_anchors_are_refused(day: int, at: str, zone: str) -> None:
    with pytest.raises(InvalidArgument):
        check_cycle_anchor(day, at, zone)


@pytest.mark.parametrize(
    "caps",
    [{"marketing": {}}, {"marketing": {"units": 0}}, {"marketing": {"x": 1}}, {"bad key": {}}],
)
def test_bad_spending_caps_are_refused(caps: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        check_spending_caps(caps)
