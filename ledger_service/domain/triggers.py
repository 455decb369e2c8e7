"""Trigger evaluation: which alerts (and the auto top-up trigger) newly hold, and which cleared.

``evaluate_triggers`` is a pure function of a wallet's state: it reads no clock and changes
nothing. Time enters only through the rolling counters it reads (``SpendingDay``,
``BurnWindow``), which the usage event advances with its own timestamp when it is applied, so
live evaluation and replay see the same figures. The aggregate turns the ``Verdict`` into events
stamped with the time of the event that caused them.

Alerts fire once per crossing and re-arm only after their condition cleared (or, for the
warnings a ``once_per_cycle`` setting limits, at most once per cycle); a spending cap fires
once per category per day (see ``domain.policies`` for the alert kinds).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from ledger_service.domain.money import ZERO, canonical
from ledger_service.domain.policies import (
    AUTO_TOPUP,
    BELOW_ZERO,
    BURN_WINDOW_HOURS,
    CREDIT_LIMIT_EXCEEDED,
    LOW_BALANCE,
    RAPID_BURN,
    SPENDING_CAP_REACHED,
    AlertSettings,
    AutoTopup,
    SpendingCap,
    day_bounds,
    hour_of,
)

# The counters below are the aggregate's running state, changed in place by the usage event
# that counts (one per message): replacing them per message would allocate for nothing. They
# are read by ``evaluate_triggers`` and copied into snapshots, never shared between wallets.


@dataclass(slots=True)
class Tally:
    """Units and amount of one category's usage on one day."""

    units: int = 0
    amount: Decimal = ZERO


@dataclass(slots=True)
class SpendingDay:
    """Usage per category on one day of the wallet's time zone (what spending caps count).
    The initial value (no day yet) is over for any moment."""

    day: str = ""
    ends_at: datetime | None = None
    """End of ``day`` in UTC."""
    categories: dict[str, Tally] = field(default_factory=dict)

    @classmethod
    def of(cls, at: datetime, zone: ZoneInfo) -> SpendingDay:
        """A fresh day: the one containing ``at`` in ``zone``."""
        day, ends_at = day_bounds(at, zone)
        return cls(day, ends_at)

    def is_over_at(self, at: datetime) -> bool:
        return self.ends_at is None or at >= self.ends_at

    def add(self, category: str, units: int, amount: Decimal) -> None:
        tally = self.categories.get(category)
        if tally is None:
            self.categories[category] = Tally(units, amount)
        else:
            tally.units += units
            tally.amount += amount


@dataclass(slots=True)
class BurnWindow:
    """Usage per whole hour since the epoch, over the last ``BURN_WINDOW_HOURS`` hours with
    usage: the current hour plus the 23 before it."""

    hours: dict[int, Decimal] = field(default_factory=dict)

    def add(self, at: datetime, amount: Decimal) -> None:
        hour = hour_of(at)
        hours = self.hours
        hours[hour] = hours.get(hour, ZERO) + amount
        if len(hours) > BURN_WINDOW_HOURS:
            oldest = hour - BURN_WINDOW_HOURS
            self.hours = {h: v for h, v in hours.items() if h > oldest}

    def total(self) -> Decimal:
        """Usage within the window that ends at the latest hour with usage. Measured at the
        last usage, not at the evaluating event: a credit hours later re-arms nothing."""
        if not self.hours:
            return ZERO
        oldest = max(self.hours) - BURN_WINDOW_HOURS
        return sum((v for h, v in self.hours.items() if h > oldest), ZERO)


class PolicyState(Protocol):
    """What trigger evaluation reads of a wallet (the ``Wallet`` aggregate is one)."""

    @property
    def included(self) -> Decimal: ...
    @property
    def granted(self) -> Decimal: ...
    @property
    def held(self) -> Decimal: ...
    @property
    def prepaid(self) -> Decimal: ...
    @property
    def postpaid_used(self) -> Decimal: ...
    @property
    def postpaid_limit(self) -> Decimal: ...
    @property
    def cycle_funded(self) -> Decimal: ...
    @property
    def alert_settings(self) -> AlertSettings: ...
    @property
    def auto_topup(self) -> AutoTopup: ...
    @property
    def spending_caps(self) -> Mapping[str, SpendingCap]: ...
    @property
    def triggered(self) -> Collection[str]: ...
    @property
    def warned_this_cycle(self) -> Collection[str]: ...
    @property
    def blocked(self) -> Mapping[str, str]: ...
    @property
    def spend_day(self) -> SpendingDay: ...
    @property
    def burn_window(self) -> BurnWindow: ...


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert (or the auto top-up trigger, ``kind == AUTO_TOPUP``) that newly holds."""

    kind: str
    threshold: Decimal | None = None
    measured: Decimal | None = None
    category: str | None = None
    day: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What changed. Raise ``cap_reached`` first, then re-arm ``rearmed``, then raise
    ``raised`` (in the order of the alert kinds)."""

    balance: Decimal
    available: Decimal
    cap_reached: Alert | None
    rearmed: tuple[str, ...]
    raised: tuple[Alert, ...]


def evaluate_triggers(state: PolicyState, category: str | None = None) -> Verdict | None:
    """The verdict on ``state`` right after a money movement (``category``: the category of
    the usage that moved it, whose daily cap is checked), or None when nothing changed."""
    balance = state.included + state.granted + state.prepaid - state.postpaid_used
    available = balance + state.postpaid_limit - state.held
    settings, auto = state.alert_settings, state.auto_topup
    low_line = settings.low_balance_line(state.cycle_funded)
    burn_limit = settings.burn_limit_24h
    burn = state.burn_window.total() if burn_limit is not None else ZERO
    conditions = (
        (LOW_BALANCE, low_line is not None and balance < low_line, low_line),
        (BELOW_ZERO, balance < 0, ZERO),
        (CREDIT_LIMIT_EXCEEDED, available < 0, ZERO),
        (RAPID_BURN, burn_limit is not None and burn > burn_limit, burn_limit),
        (AUTO_TOPUP, auto.enabled and balance < auto.trigger_balance, None),
    )
    triggered = state.triggered
    rearmed: list[str] = []
    raised: list[Alert] = []
    for kind, holds, line in conditions:
        if not holds:
            if kind in triggered:
                rearmed.append(kind)
        elif kind not in triggered and not settings.silenced(kind, state.warned_this_cycle):
            measured = canonical(burn) if kind == RAPID_BURN else None
            raised.append(Alert(kind, line, measured))
    cap = None if category is None else cap_reached(state, category)
    if not (rearmed or raised or cap):
        return None
    return Verdict(balance, available, cap, tuple(rearmed), tuple(raised))


def cap_reached(state: PolicyState, category: str) -> Alert | None:
    """The spending cap alert of ``category`` if its cap is reached today and it has not
    fired today yet."""
    cap = state.spending_caps.get(category)
    day = state.spend_day
    if cap is None or state.blocked.get(category) == day.day:
        return None
    tally = day.categories.get(category) or Tally()
    if not cap.reached(tally.units, tally.amount):
        return None
    return Alert(SPENDING_CAP_REACHED, None, canonical(tally.amount), category, day.day)
