"""Wallet policies: billing cycles, alert thresholds, spending caps and auto top-up settings.

Pure values and functions; the ``Wallet`` aggregate records every change of them as an event
(whose payload keeps the plain JSON shape: ``as_dict``) and evaluates them after every money
movement (``domain.triggers``).

Alert kinds (the ``alert`` of a ``Wallet.AlertRaised`` event):

* ``low_balance_warning``   - balance below the low-balance threshold: an absolute amount, or
  a percentage (default 40%) of the cycle's funding (the balance the cycle opened with, plus
  what was credited during the cycle: a top-up mid-cycle raises the base, so a wallet opened
  empty and then topped up still warns);
* ``balance_below_zero``    - balance below zero: the wallet now draws on postpaid credit;
* ``credit_limit_exceeded`` - available below zero: usage beyond the credit limit (overage);
* ``rapid_burn``            - usage within the last 24 hours above the burn limit (the window
  slides by whole hours: the current hour plus the 23 before it);
* ``spending_cap_reached``  - a category's usage today reached its daily cap (units or amount);
  the category is then flagged ``blocked`` for the rest of that day (the wallet's time zone).

Each balance alert fires once per crossing and re-arms only after its condition has cleared
(``Wallet.TriggersRearmed``, published as ``balance_recovered``), so a balance hovering below a
threshold does not spam. With ``renotify: "once_per_cycle"`` the low-balance and below-zero
warnings fire at most once per billing cycle: a second crossing in the same cycle raises nothing
(a wallet that tops up and drains again every few days warns once a month). A spending cap fires
once per category per day.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger_service.domain.errors import InvalidArgument
from ledger_service.domain.ids import check_key
from ledger_service.domain.money import ZERO, canonical, parse_amount

LOW_BALANCE = "low_balance_warning"
BELOW_ZERO = "balance_below_zero"
CREDIT_LIMIT_EXCEEDED = "credit_limit_exceeded"
RAPID_BURN = "rapid_burn"
SPENDING_CAP_REACHED = "spending_cap_reached"
BALANCE_RECOVERED = "balance_recovered"
AUTO_TOPUP = "auto_topup"
"""Not an alert: the auto top-up trigger shares the fire-once/re-arm mechanism."""

BALANCE_ALERTS = (LOW_BALANCE, BELOW_ZERO, CREDIT_LIMIT_EXCEEDED)

RENOTIFY_PER_CROSSING = "per_crossing"
RENOTIFY_ONCE_PER_CYCLE = "once_per_cycle"
RENOTIFY_MODES = (RENOTIFY_PER_CROSSING, RENOTIFY_ONCE_PER_CYCLE)
ONCE_PER_CYCLE_ALERTS = (LOW_BALANCE, BELOW_ZERO)
"""The warnings ``once_per_cycle`` limits (overage and rapid burn always fire per crossing)."""
ALERT_KINDS = (*BALANCE_ALERTS, RAPID_BURN, SPENDING_CAP_REACHED, BALANCE_RECOVERED)

LOW_BALANCE_PERCENT_DEFAULT = Decimal(40)
ANCHOR_DAY_MAX = 28
"""Cycles anchor on day 1-28 so every month has the anchor day."""
BURN_WINDOW_HOURS = 24
SPENDING_CAP_CATEGORIES_MAX = 50
_ANCHOR_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


@dataclass(frozen=True, slots=True)
class CycleAnchor:
    """Where billing cycles start: ``day`` of each month at ``at`` (HH:MM) in ``time_zone``."""

    day: int = 1
    at: str = "00:00"
    time_zone: str = "UTC"

    def as_dict(self) -> dict[str, object]:
        return {"day": self.day, "at": self.at, "time_zone": self.time_zone}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> CycleAnchor:
        return cls(int(str(data["day"])), str(data["at"]), str(data["time_zone"]))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def boundary(self, year: int, month: int) -> datetime:
        hour, minute = (int(part) for part in self.at.split(":"))
        local = datetime(year, month, self.day, hour, minute, tzinfo=self.zone)
        return local.astimezone(UTC)

    def cycle_start_at(self, moment: datetime) -> datetime:
        """The latest cycle boundary at or before ``moment``."""
        local = moment.astimezone(self.zone)
        start = self.boundary(local.year, local.month)
        if start > moment:
            year, month = _previous_month(local.year, local.month)
            start = self.boundary(year, month)
        return start

    def next_boundary(self, after: datetime) -> datetime:
        """The first cycle boundary strictly after ``after``."""
        local = self.cycle_start_at(after).astimezone(self.zone)
        year, month = _next_month(local.year, local.month)
        return self.boundary(year, month)

    def boundaries_due(self, cycle_start: datetime, now: datetime) -> list[datetime]:
        """Every boundary after ``cycle_start`` up to ``now``, oldest first (missed cycles)."""
        due: list[datetime] = []
        boundary = self.next_boundary(cycle_start)
        while boundary <= now:
            due.append(boundary)
            boundary = self.next_boundary(boundary)
        return due


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """When the balance alerts fire. An absolute ``low_balance_threshold`` wins over the
    percentage of the cycle's funding; no ``burn_limit_24h`` means no rapid-burn alert;
    ``renotify`` says whether the warnings fire again on every crossing or once per cycle."""

    low_balance_threshold: Decimal | None = None
    low_balance_percent: Decimal = LOW_BALANCE_PERCENT_DEFAULT
    burn_limit_24h: Decimal | None = None
    renotify: str = RENOTIFY_PER_CROSSING

    def silenced(self, kind: str, warned_this_cycle: Collection[str]) -> bool:
        """Whether a new crossing of ``kind`` raises nothing: it already warned this cycle."""
        return (
            self.renotify == RENOTIFY_ONCE_PER_CYCLE
            and kind in ONCE_PER_CYCLE_ALERTS
            and kind in warned_this_cycle
        )

    def low_balance_line(self, funded: Decimal) -> Decimal | None:
        """The balance below which ``low_balance_warning`` fires (None: never)."""
        if self.low_balance_threshold is not None:
            return self.low_balance_threshold
        line = canonical(funded * self.low_balance_percent / 100)
        return line if line > 0 else None


@dataclass(frozen=True, slots=True)
class AutoTopup:
    """When enabled, one top-up request of ``amount`` per crossing below ``trigger_balance``."""

    enabled: bool = False
    trigger_balance: Decimal = ZERO
    amount: Decimal = ZERO
    auto_approve: bool = False


@dataclass(frozen=True, slots=True)
class SpendingCap:
    """A category's daily cap: reached when today's units or amount reach either limit.
    Message usage is a fact and is never refused, so a cap only alerts and flags; a ``hard``
    cap also refuses synchronous consumption (``domain.consumption``) that would pass it."""

    units: int | None = None
    amount: Decimal | None = None
    hard: bool = False

    def reached(self, units: int, amount: Decimal) -> bool:
        return (self.units is not None and units >= self.units) or (
            self.amount is not None and amount >= self.amount
        )

    def passed(self, units: int, amount: Decimal) -> bool:
        """Whether a day with these totals went beyond the cap (reaching it is allowed)."""
        return (self.units is not None and units > self.units) or (
            self.amount is not None and amount > self.amount
        )

    def as_dict(self) -> dict[str, object]:
        """The stored shape: ``hard`` only when set, so a soft cap stores what it always did."""
        stored: dict[str, object] = {"units": self.units, "amount": self.amount}
        if self.hard:
            stored["hard"] = True
        return stored

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpendingCap:
        return cls(data["units"], data["amount"], bool(data.get("hard", False)))


@dataclass(frozen=True, slots=True)
class TransferPolicy:
    """How much tenant transfers may send from the wallet per day (None: no limit)."""

    daily_limit: Decimal | None = None


def check_alert_settings(
    low_balance_threshold: object,
    low_balance_percent: object,
    burn_limit_24h: object,
    renotify: object = RENOTIFY_PER_CROSSING,
) -> AlertSettings:
    if renotify not in RENOTIFY_MODES:
        raise InvalidArgument(f"renotify must be one of {list(RENOTIFY_MODES)}, got {renotify!r}")
    return AlertSettings(
        low_balance_threshold=None
        if low_balance_threshold is None
        else parse_amount(low_balance_threshold, field="low_balance_threshold"),
        low_balance_percent=check_percent(low_balance_percent, "low_balance_percent"),
        burn_limit_24h=None
        if burn_limit_24h is None
        else parse_amount(burn_limit_24h, field="burn_limit_24h", allow_zero=False),
        renotify=str(renotify),
    )


def check_auto_topup(
    enabled: bool, trigger_balance: object, amount: object, auto_approve: bool
) -> AutoTopup:
    """A disabled auto top-up may keep a zero amount; an enabled one needs a positive one."""
    return AutoTopup(
        enabled=bool(enabled),
        trigger_balance=parse_amount(trigger_balance, field="trigger_balance", allow_negative=True),
        amount=parse_amount(amount, field="amount", allow_zero=not enabled),
        auto_approve=bool(auto_approve),
    )


def check_cycle_anchor(day: object, at: object, time_zone: object) -> CycleAnchor:
    if not isinstance(day, int) or isinstance(day, bool) or not 1 <= day <= ANCHOR_DAY_MAX:
        raise InvalidArgument(f"cycle anchor day must be 1-{ANCHOR_DAY_MAX}, got {day!r}")
    if not isinstance(at, str) or not _ANCHOR_TIME.fullmatch(at):
        raise InvalidArgument(f"cycle anchor time must be HH:MM (24 h), got {at!r}")
    if not isinstance(time_zone, str) or not time_zone or len(time_zone) > 64:
        raise InvalidArgument(f"time_zone must be an IANA zone name, got {time_zone!r}")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(f"unknown time zone {time_zone!r}") from None
    return CycleAnchor(day, at, time_zone)


def check_percent(value: object, field: str) -> Decimal:
    percent = parse_amount(value, field=field)
    if percent > 100:
        raise InvalidArgument(f"{field} is a percentage: 0-100, got {value!r}")
    return percent


def check_spending_caps(caps: object) -> dict[str, SpendingCap]:
    """``{category: {"units": int | None, "amount": Decimal | None, "hard": bool}}``, units or
    amount set per category, sorted by category; an empty mapping removes every cap."""
    if not isinstance(caps, dict):
        raise InvalidArgument("spending_caps must map category to {units, amount}")
    if len(caps) > SPENDING_CAP_CATEGORIES_MAX:
        raise InvalidArgument(f"at most {SPENDING_CAP_CATEGORIES_MAX} capped categories")
    checked: dict[str, SpendingCap] = {}
    for category, cap in sorted(caps.items()):
        check_key(category, "spending cap category")
        if not isinstance(cap, dict) or set(cap) - {"units", "amount", "hard"}:
            raise InvalidArgument(f"spending cap of {category} takes units and/or amount, hard")
        units, amount = cap.get("units"), cap.get("amount")
        if units is None and amount is None:
            raise InvalidArgument(f"spending cap of {category} needs units or amount")
        if units is not None and (
            not isinstance(units, int) or isinstance(units, bool) or units <= 0
        ):
            raise InvalidArgument(f"spending cap units of {category} must be a positive integer")
        checked[category] = SpendingCap(
            units,
            None
            if amount is None
            else parse_amount(amount, field=f"spending_caps[{category}].amount", allow_zero=False),
            _flag(cap.get("hard", False), f"spending_caps[{category}].hard"),
        )
    return checked


def day_bounds(moment: datetime, zone: ZoneInfo) -> tuple[str, datetime]:
    """(ISO day, end of that day in UTC) of ``moment`` in ``zone``."""
    local = moment.astimezone(zone)
    day = local.date()
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return day.isoformat(), end.astimezone(UTC)


def hour_of(moment: datetime) -> int:
    """Whole hours since the epoch: the burn window's slot."""
    return int(moment.timestamp()) // 3600


def _previous_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


# -- policy sections as requested (PATCH /v1/wallets/{id}, `configure_wallet`) -----------------
# A section replaces that whole policy; omitted keys take these defaults. Configuring an auto
# top-up turns it on unless the section says otherwise (the state's default is off).

ALERT_SECTION_FIELDS = frozenset(
    {"low_balance_threshold", "low_balance_percent", "burn_limit_24h", "renotify"}
)
AUTO_TOPUP_SECTION_FIELDS = frozenset({"enabled", "trigger_balance", "amount", "auto_approve"})
CYCLE_SECTION_FIELDS = frozenset({"anchor_day", "anchor_time", "time_zone"})
TRANSFER_SECTION_FIELDS = frozenset({"daily_limit"})
AUTO_TOPUP_SECTION_ENABLED_DEFAULT = True


def alert_settings_from(section: Mapping[str, object]) -> AlertSettings:
    _check_fields(section, ALERT_SECTION_FIELDS)
    default = AlertSettings()
    return check_alert_settings(
        section.get("low_balance_threshold", default.low_balance_threshold),
        section.get("low_balance_percent", default.low_balance_percent),
        section.get("burn_limit_24h", default.burn_limit_24h),
        section.get("renotify", default.renotify),
    )


def auto_topup_from(section: Mapping[str, object]) -> AutoTopup:
    _check_fields(section, AUTO_TOPUP_SECTION_FIELDS)
    default = AutoTopup()
    return check_auto_topup(
        _flag(section.get("enabled", AUTO_TOPUP_SECTION_ENABLED_DEFAULT), "enabled"),
        section.get("trigger_balance", default.trigger_balance),
        section.get("amount", default.amount),
        _flag(section.get("auto_approve", default.auto_approve), "auto_approve"),
    )


def cycle_anchor_from(section: Mapping[str, object]) -> CycleAnchor:
    _check_fields(section, CYCLE_SECTION_FIELDS)
    default = CycleAnchor()
    return check_cycle_anchor(
        section.get("anchor_day", default.day),
        section.get("anchor_time", default.at),
        section.get("time_zone", default.time_zone),
    )


def transfer_policy_from(section: Mapping[str, object]) -> TransferPolicy:
    _check_fields(section, TRANSFER_SECTION_FIELDS)
    limit = section.get("daily_limit")
    return TransferPolicy(
        None if limit is None else parse_amount(limit, field="transfers.daily_limit")
    )


def _check_fields(section: Mapping[str, object], allowed: frozenset[str]) -> None:
    unknown = set(section) - allowed
    if unknown:
        raise InvalidArgument(f"unknown setting(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name} must be true or false, got {value!r}")
    return value
