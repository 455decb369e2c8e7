"""Trigger evaluation as a pure function of a wallet's state, and the counters it reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from ledger_service.domain.policies import (
    AUTO_TOPUP,
    BELOW_ZERO,
    CREDIT_LIMIT_EXCEEDED,
    LOW_BALANCE,
    RAPID_BURN,
    SPENDING_CAP_REACHED,
    AlertSettings,
    AutoTopup,
    SpendingCap,
)
from ledger_service.domain.triggers import (
    Alert,
    BurnWindow,
    SpendingDay,
    Tally,
    Verdict,
    evaluate_triggers,
)

D = Decimal
NOON = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ZERO, FUNDED, LIMIT = D(0), D(100), D(50)
DEFAULT_ALERTS, NO_AUTO_TOPUP = AlertSettings(), AutoTopup()


@dataclass
class State:
    """A wallet's state as evaluation reads it (``PolicyState``), without the aggregate."""

    included: Decimal = ZERO
    granted: Decimal = ZERO
    held: Decimal = ZERO
    prepaid: Decimal = FUNDED
    postpaid_used: Decimal = ZERO
    postpaid_limit: Decimal = LIMIT
    cycle_funded: Decimal = FUNDED
    alert_settings: AlertSettings = DEFAULT_ALERTS
    auto_topup: AutoTopup = NO_AUTO_TOPUP
    spending_caps: dict[str, SpendingCap] = field(default_factory=dict)
    triggered: list[str] = field(default_factory=list)
    warned_this_cycle: list[str] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)
    spend_day: SpendingDay = field(default_factory=SpendingDay)
    burn_window: BurnWindow = field(default_factory=BurnWindow)


def kinds(verdict: Verdict | None) -> list[str]:
    assert verdict is not None
    return [alert.kind for alert in verdict.raised]


def test_nothing_to_say_is_none() -> None:
    assert evaluate_triggers(State()) is None
    assert evaluate_triggers(State(prepaid=D(10), triggered=[LOW_BALANCE])) is None


def test_low_balance_line_is_a_share_of_the_funding_unless_absolute() -> None:
    assert kinds(evaluate_triggers(State(prepaid=D(39)))) == [LOW_BALANCE]  # 40% of 100
    assert evaluate_triggers(State(prepaid=D(40))) is None
    absolute = AlertSettings(low_balance_threshold=D(10))
    assert evaluate_triggers(State(prepaid=D(39), alert_settings=absolute)) is None
    verdict = evaluate_triggers(State(prepaid=D("9.5"), alert_settings=absolute))
    assert verdict is not None
    assert verdict.raised == (Alert(LOW_BALANCE, D(10)),)
    # Nothing funded this cycle: no percentage line at all.
    assert evaluate_triggers(State(prepaid=D(0), cycle_funded=D(0))) is None


def test_balance_alerts_are_raised_in_order_with_their_figures() -> None:
    verdict = evaluate_triggers(State(prepaid=D(0), postpaid_used=D(60)))
    assert verdict is not None
    assert (verdict.balance, verdict.available) == (D(-60), D(-10))
    assert [(a.kind, a.threshold) for a in verdict.raised] == [
        (LOW_BALANCE, D(40)),
        (BELOW_ZERO, D(0)),
        (CREDIT_LIMIT_EXCEEDED, D(0)),
    ]
    assert verdict.rearmed == ()
    assert verdict.cap_reached is None


def test_what_fired_is_not_raised_again_and_rearms_once_cleared() -> None:
    fired = [BELOW_ZERO, LOW_BALANCE]
    assert evaluate_triggers(State(prepaid=D(0), postpaid_used=D(10), triggered=fired)) is None
    verdict = evaluate_triggers(State(prepaid=D(20), triggered=fired))
    assert verdict is not None
    assert verdict.rearmed == (BELOW_ZERO,)  # still below the 40 line: low balance stays
    assert verdict.raised == ()


def test_rapid_burn_measures_the_window_at_its_latest_hour() -> None:
    window = BurnWindow()
    window.add(NOON, D(15))
    window.add(NOON + timedelta(hours=23), D(6))
    settings = AlertSettings(low_balance_threshold=D(0), burn_limit_24h=D(20))
    verdict = evaluate_triggers(State(alert_settings=settings, burn_window=window))
    assert verdict is not None
    assert verdict.raised == (Alert(RAPID_BURN, D(20), D("21.0000000")),)
    window.add(NOON + timedelta(hours=24), D(1))  # noon's hour leaves the window
    verdict = evaluate_triggers(
        State(alert_settings=settings, burn_window=window, triggered=[RAPID_BURN])
    )
    assert verdict is not None
    assert verdict.rearmed == (RAPID_BURN,)
    # Without a burn limit the window is not even summed.
    assert evaluate_triggers(State(burn_window=window)) is None


def test_auto_topup_holds_below_its_trigger_when_enabled() -> None:
    settings = AlertSettings(low_balance_threshold=D(0))
    enabled = AutoTopup(enabled=True, trigger_balance=D(50), amount=D(200))
    disabled = AutoTopup(enabled=False, trigger_balance=D(50), amount=D(0))
    low = State(prepaid=D(49), alert_settings=settings, auto_topup=enabled)
    assert kinds(evaluate_triggers(low)) == [AUTO_TOPUP]
    at_trigger = State(prepaid=D(50), alert_settings=settings, auto_topup=enabled)
    assert evaluate_triggers(at_trigger) is None
    off = State(prepaid=D(49), alert_settings=settings, auto_topup=disabled)
    assert evaluate_triggers(off) is None


def today_with(category: str, units: int, amount: str) -> SpendingDay:
    day = SpendingDay.of(NOON, ZoneInfo("UTC"))
    day.add(category, units, D(amount))
    return day


def test_a_cap_is_checked_for_the_usage_category_once_a_day() -> None:
    caps = {"marketing": SpendingCap(units=3), "utility": SpendingCap(amount=D(5))}
    day = today_with("marketing", 3, "3")
    state = State(spending_caps=caps, spend_day=day)
    assert evaluate_triggers(state) is None  # no usage category: caps are not checked
    verdict = evaluate_triggers(state, "marketing")
    assert verdict is not None
    assert verdict.cap_reached == Alert(
        SPENDING_CAP_REACHED, None, D("3.0000000"), "marketing", "2026-11-22"
    )
    assert evaluate_triggers(State(spending_caps=caps, spend_day=day), "utility") is None
    blocked_today = State(spending_caps=caps, spend_day=day, blocked={"marketing": "2026-11-22"})
    assert evaluate_triggers(blocked_today, "marketing") is None
    by_amount = State(spending_caps=caps, spend_day=today_with("utility", 1, "5"))
    verdict = evaluate_triggers(by_amount, "utility")
    assert verdict is not None
    assert verdict.cap_reached is not None
    assert verdict.cap_reached.measured == D(5)


def test_the_spending_day_is_a_day_of_the_wallet_time_zone() -> None:
    day = SpendingDay.of(datetime(2026, 11, 23, 3, 0, tzinfo=UTC), ZoneInfo("America/New_York"))
    assert day.day == "2026-11-22"
    assert day.ends_at == datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
    assert not day.is_over_at(datetime(2026, 11, 23, 4, 59, tzinfo=UTC))
    assert day.is_over_at(datetime(2026, 11, 23, 5, 0, tzinfo=UTC))
    assert SpendingDay().is_over_at(NOON)
    day.add("marketing", 2, D(1))
    day.add("marketing", 1, D("0.5"))
    assert day.categories == {"marketing": Tally(3, D("1.5"))}


def test_the_burn_window_keeps_only_its_last_24_hours() -> None:
    window = BurnWindow()
    for hour in range(30):
        window.add(NOON + timedelta(hours=hour), D(1))
    assert len(window.hours) <= 24
    assert window.total() == D(24)
    assert BurnWindow().total() == D(0)
