"""The wallet's policy commands and events: alerts, spending caps, auto top-up and cycles.

Every function here taking ``self: Wallet`` is a method of ``Wallet``, assigned in its class
body, and is written here only to keep ``wallet.py`` to the money core. The library defines an
aggregate's event classes from the ``@event`` methods and event classes in its class body, so
these events (declared in ``wallet_events``, adopted by ``Wallet``) are ``Wallet.AlertRaised``
etc. and keep their stored topics ``ledger_service.domain.wallet:Wallet.*``.
Call them on the wallet (``wallet.configure_alerts(...)``, ``self._alert_raised(...)``): an
event method only triggers its event when reached through the class.

The values (settings, counters) and the evaluation itself are pure: ``domain.policies`` and
``domain.triggers``. Events take ``timestamp`` (None: now, by the library's clock) so that the
alerts a movement raises carry the time of that movement.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from eventsourcing.domain import event

from ledger_service.domain import accounts, wallet_events
from ledger_service.domain.entries import CreditBucket, CreditKind, DebitKind, DebitSplit
from ledger_service.domain.money import ZERO, canonical
from ledger_service.domain.policies import (
    AUTO_TOPUP,
    LOW_BALANCE_PERCENT_DEFAULT,
    ONCE_PER_CYCLE_ALERTS,
    RENOTIFY_PER_CROSSING,
    SPENDING_CAP_REACHED,
    AlertSettings,
    AutoTopup,
    CycleAnchor,
    SpendingCap,
    check_alert_settings,
    check_auto_topup,
    check_spending_caps,
)
from ledger_service.domain.triggers import (
    Alert,
    BurnWindow,
    SpendingDay,
    Tally,
    evaluate_triggers,
)

if TYPE_CHECKING:
    from ledger_service.domain.wallet import Wallet

# -- settings -------------------------------------------------------------------------------


def configure_alerts(
    self: Wallet,
    *,
    low_balance_threshold: Decimal | None,
    low_balance_percent: Decimal,
    burn_limit_24h: Decimal | None,
    renotify: str = RENOTIFY_PER_CROSSING,
    actor: str,
) -> None:
    """An absolute low-balance threshold wins over the percentage of the cycle's funding."""
    settings = check_alert_settings(
        low_balance_threshold, low_balance_percent, burn_limit_24h, renotify
    )
    self._alert_settings_changed(
        low_balance_threshold=settings.low_balance_threshold,
        low_balance_percent=settings.low_balance_percent,
        burn_limit_24h=settings.burn_limit_24h,
        renotify=settings.renotify,
        actor=actor,
    )
    self._evaluate_triggers()


@event(wallet_events.AlertSettingsChanged)
def _alert_settings_changed(
    self: Wallet,
    low_balance_threshold: Decimal | None,
    low_balance_percent: Decimal,
    burn_limit_24h: Decimal | None,
    renotify: str,
    actor: str,
) -> None:
    self.alert_settings = AlertSettings(
        low_balance_threshold, low_balance_percent, burn_limit_24h, renotify
    )


def configure_auto_topup(
    self: Wallet,
    *,
    enabled: bool,
    trigger_balance: Decimal,
    amount: Decimal,
    auto_approve: bool,
    actor: str,
) -> None:
    """When enabled, one top-up request of ``amount`` per crossing below the trigger."""
    auto = check_auto_topup(enabled, trigger_balance, amount, auto_approve)
    self._auto_topup_changed(
        enabled=auto.enabled,
        trigger_balance=auto.trigger_balance,
        amount=auto.amount,
        auto_approve=auto.auto_approve,
        actor=actor,
    )
    self._evaluate_triggers()


@event(wallet_events.AutoTopupChanged)
def _auto_topup_changed(
    self: Wallet,
    enabled: bool,
    trigger_balance: Decimal,
    amount: Decimal,
    auto_approve: bool,
    actor: str,
) -> None:
    self.auto_topup = AutoTopup(enabled, trigger_balance, amount, auto_approve)


def change_spending_caps(self: Wallet, caps: dict[str, dict[str, Any]], *, actor: str) -> None:
    checked = check_spending_caps(caps)
    self._spending_caps_changed(
        caps={category: cap.as_dict() for category, cap in checked.items()}, actor=actor
    )


@event(wallet_events.SpendingCapsChanged)
def _spending_caps_changed(self: Wallet, caps: dict[str, dict[str, Any]], actor: str) -> None:
    self.spending_caps = {category: SpendingCap.from_dict(cap) for category, cap in caps.items()}


# -- cycles ---------------------------------------------------------------------------------


def change_cycle_anchor(self: Wallet, anchor: CycleAnchor, *, actor: str) -> None:
    """The current cycle keeps its start; the next one starts at the new anchor."""
    self._cycle_anchor_changed(
        anchor=anchor.as_dict(),
        next_cycle_at=anchor.next_boundary(self.cycle_start),
        actor=actor,
    )


@event(wallet_events.CycleAnchorChanged)
def _cycle_anchor_changed(
    self: Wallet, anchor: dict[str, Any], next_cycle_at: datetime, actor: str
) -> None:
    self.cycle_anchor = CycleAnchor.from_dict(anchor)


def start_due_cycles(self: Wallet, now: datetime, *, actor: str) -> int:
    """Start every cycle whose boundary passed by ``now``, oldest first: unused included
    quota expires and the new quota is granted. A boundary is never started twice: only
    boundaries after ``cycle_start`` are due. Returns how many cycles were started."""
    due = self.cycle_anchor.boundaries_due(self.cycle_start, now)
    for boundary in due:
        _start_cycle(self, boundary, actor)
    if due:
        self._evaluate_triggers()
    return len(due)


def _start_cycle(wallet: Wallet, boundary: datetime, actor: str) -> None:
    stamp = boundary.isoformat()
    if wallet.included > 0:
        wallet._debit_entry(
            wallet.included,
            DebitSplit(wallet.included, ZERO, ZERO, ZERO),
            kind=DebitKind.EXPIRY,
            counter_account=accounts.PROMOTIONS,
            reference=f"included-quota:expired:{stamp}",
            actor=actor,
        )
    if wallet.included_quota > 0:
        wallet.credit(
            wallet.included_quota,
            bucket=CreditBucket.INCLUDED,
            kind=CreditKind.GRANT,
            counter_account=accounts.PROMOTIONS,
            reference=f"included-quota:{stamp}",
            actor=actor,
            evaluate_triggers=False,
        )
    wallet._cycle_started(
        cycle_start=boundary,
        next_cycle_at=wallet.cycle_anchor.next_boundary(boundary),
        opening_funded=max(wallet.included + wallet.granted + wallet.prepaid, ZERO),
        actor=actor,
    )


@event(wallet_events.CycleStarted)
def _cycle_started(
    self: Wallet,
    cycle_start: datetime,
    next_cycle_at: datetime,
    opening_funded: Decimal,
    actor: str,
) -> None:
    self.cycle_start = cycle_start
    self.cycle_funded = opening_funded
    self.warned_this_cycle = []


# -- usage counters and triggers: fire once per crossing, re-arm after recovery -------------


def _track_spending(self: Wallet, at: datetime, category: str, units: int, amount: Decimal) -> None:
    """Count usage at ``at`` (its event's time) into today's tally (caps) and the burn
    window. A new day (in the wallet's time zone) also lifts yesterday's blocks."""
    if self.spend_day.is_over_at(at):
        self.spend_day = today = SpendingDay.of(at, self.cycle_anchor.zone)
        self.blocked = {c: d for c, d in self.blocked.items() if d == today.day}
    self.spend_day.add(category, units, amount)
    self.burn_window.add(at, amount)


def _evaluate_triggers(self: Wallet, category: str | None = None) -> None:
    """Raise what newly holds and re-arm what cleared, as events stamped with the time of the
    event that caused them (replay re-decides nothing: it only re-applies these events)."""
    verdict = evaluate_triggers(self, category)
    if verdict is None:
        return
    at = self.modified_on
    balance, available = canonical(verdict.balance), canonical(verdict.available)
    if verdict.cap_reached is not None:
        _raise_alert(self, verdict.cap_reached, balance, available, at)
    if verdict.rearmed:
        self._triggers_rearmed(
            company_id=self.company_id,
            triggers=list(verdict.rearmed),
            balance=balance,
            available=available,
            timestamp=at,
        )
    for alert in verdict.raised:
        if alert.kind != AUTO_TOPUP:
            _raise_alert(self, alert, balance, available, at)
            continue
        auto = self.auto_topup
        self._auto_topup_triggered(
            company_id=self.company_id,
            amount=auto.amount,
            trigger_balance=auto.trigger_balance,
            auto_approve=auto.auto_approve,
            balance=balance,
            timestamp=at,
        )


def _raise_alert(
    wallet: Wallet, alert: Alert, balance: Decimal, available: Decimal, at: datetime
) -> None:
    wallet._alert_raised(
        company_id=wallet.company_id,
        alert=alert.kind,
        balance=balance,
        available=available,
        threshold=alert.threshold,
        category=alert.category,
        day=alert.day,
        measured=alert.measured,
        timestamp=at,
    )


@event(wallet_events.AlertRaised)
def _alert_raised(
    self: Wallet,
    company_id: str,
    alert: str,
    balance: Decimal,
    available: Decimal,
    threshold: Decimal | None,
    category: str | None,
    day: str | None,
    measured: Decimal | None,
    timestamp: datetime | None,
) -> None:
    if alert == SPENDING_CAP_REACHED and category is not None and day is not None:
        self.blocked[category] = day
        return
    self.triggered = sorted({*self.triggered, alert})
    if alert in ONCE_PER_CYCLE_ALERTS:
        # Kept whatever ``renotify`` says, so switching to once per cycle mid-cycle counts
        # the warnings this cycle already gave.
        self.warned_this_cycle = sorted({*self.warned_this_cycle, alert})


@event(wallet_events.TriggersRearmed)
def _triggers_rearmed(
    self: Wallet,
    company_id: str,
    triggers: list[str],
    balance: Decimal,
    available: Decimal,
    timestamp: datetime | None,
) -> None:
    self.triggered = [t for t in self.triggered if t not in triggers]


@event(wallet_events.AutoTopupTriggered)
def _auto_topup_triggered(
    self: Wallet,
    company_id: str,
    amount: Decimal,
    trigger_balance: Decimal,
    auto_approve: bool,
    balance: Decimal,
    timestamp: datetime | None,
) -> None:
    self.triggered = sorted({*self.triggered, AUTO_TOPUP})


# -- snapshot versions ------------------------------------------------------------------------


def upcast_v1_v2(state: dict[str, Any]) -> None:
    """Version 2 added policies (cycles, alerts, caps, auto top-up), then kept as plain dicts:
    a version 1 snapshot gets the defaults in that shape (``upcast_v2_v3`` types them)."""
    anchor = CycleAnchor()
    state["cycle_anchor"] = anchor.as_dict()
    state["cycle_start"] = anchor.cycle_start_at(state["_created_on"])
    state["cycle_funded"] = max(state["included"] + state["prepaid"], ZERO)
    state.update(
        low_balance_threshold=None,
        low_balance_percent=LOW_BALANCE_PERCENT_DEFAULT,
        burn_limit_24h=None,
        auto_topup={
            "enabled": False,
            "trigger_balance": ZERO,
            "amount": ZERO,
            "auto_approve": False,
        },
        spending_caps={},
        triggered=[],
        blocked={},
        spend_day={"day": "", "ends_at": None, "categories": {}},
        burn_hours={},
    )


def upcast_v2_v3(state: dict[str, Any]) -> None:
    """Version 3 holds the policies as typed values (the events did not change)."""
    state["cycle_anchor"] = CycleAnchor.from_dict(state["cycle_anchor"])
    state["alert_settings"] = AlertSettings(
        state.pop("low_balance_threshold"),
        state.pop("low_balance_percent"),
        state.pop("burn_limit_24h"),
    )
    auto = state["auto_topup"]
    state["auto_topup"] = AutoTopup(
        auto["enabled"], auto["trigger_balance"], auto["amount"], auto["auto_approve"]
    )
    state["spending_caps"] = {
        category: SpendingCap.from_dict(cap) for category, cap in state["spending_caps"].items()
    }
    day = state["spend_day"]
    state["spend_day"] = SpendingDay(
        day["day"],
        day["ends_at"],
        {category: Tally(units, amount) for category, (units, amount) in day["categories"].items()},
    )
    # JSON object keys are strings: the hours were stored as "498706".
    hours = state.pop("burn_hours")
    state["burn_window"] = BurnWindow({int(hour): amount for hour, amount in hours.items()})


def upcast_v3_v4(state: dict[str, Any]) -> None:
    """Version 4 added credit grants; a wallet snapshotted before them had none."""
    state["grants"] = {}
    state["granted"] = ZERO


def upcast_v5_v6(state: dict[str, Any]) -> None:
    """Version 6 added a tax rate; a wallet snapshotted before had the service's."""
    state["tax_percent"] = None


def upcast_v6_v7(state: dict[str, Any]) -> None:
    """Version 7 counts the warnings given this cycle (``renotify: once_per_cycle``). A wallet
    snapshotted before did not count them; the warnings still in force are the best guess (one
    that fired in an earlier cycle and never cleared is counted too: it warns once less)."""
    state["warned_this_cycle"] = [k for k in state["triggered"] if k in ONCE_PER_CYCLE_ALERTS]


def upcast_v4_v5(state: dict[str, Any]) -> None:
    """Version 5 added holds; a wallet snapshotted before them had none."""
    state["holds"] = {}
    state["held"] = ZERO
