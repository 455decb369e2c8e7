"""Wallet events of policies, cycles and alerts: the wallet row's policy columns and the alerts.

Policies are stored as one JSON document per wallet (``default_policies`` until configured);
each settings event replaces its section of it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ledger_service.domain import wallet_events
from ledger_service.domain.money import format_amount
from ledger_service.domain.policies import (
    BALANCE_ALERTS,
    BALANCE_RECOVERED,
    LOW_BALANCE_PERCENT_DEFAULT,
    RENOTIFY_PER_CROSSING,
    CycleAnchor,
)
from ledger_service.domain.wallet import Wallet
from projections.handlers import HandlerTable
from projections.rows import WalletRow

if TYPE_CHECKING:
    from eventsourcing.domain import Aggregate

    from projections.builder import BatchBuilder

POLICIES = HandlerTable()


def default_policies() -> dict[str, Any]:
    """A wallet's policies before any were configured (as ``Wallet.__init__`` sets them)."""
    anchor = CycleAnchor()
    return {
        "alerts": {
            "low_balance_threshold": None,
            "low_balance_percent": format_amount(LOW_BALANCE_PERCENT_DEFAULT),
            "burn_limit_24h": None,
            "renotify": RENOTIFY_PER_CROSSING,
        },
        "auto_topup": {
            "enabled": False,
            "trigger_balance": "0",
            "amount": "0",
            "auto_approve": False,
        },
        "spending_caps": {},
        "cycle": {
            "anchor_day": anchor.day,
            "anchor_time": anchor.at,
            "time_zone": anchor.time_zone,
        },
        "transfers": {"daily_limit": None},
    }


def default_policies_json() -> str:
    return json.dumps(default_policies(), sort_keys=True)


def read_policies(policies_json: str) -> dict[str, Any]:
    """A row's policies, each section completed with the keys added to it since the row was
    written (a row from before ``alerts.renotify`` reads as ``per_crossing``, a cap from
    before ``hard`` as soft, which is what its wallet does, until a replay rewrites it)."""
    policies: dict[str, Any] = json.loads(policies_json)
    for section, defaults in default_policies().items():
        stored = policies.get(section)
        if stored is None:
            policies[section] = defaults
        elif isinstance(stored, dict) and defaults:
            policies[section] = defaults | stored
    for cap in policies.get("spending_caps", {}).values():
        cap.setdefault("hard", False)
    return policies


def _set_policy(
    b: BatchBuilder, position: int, event: Aggregate.Event, section: str, value: Any
) -> WalletRow:
    row = b.touch_wallet(position, event)
    policies = json.loads(row.policies)
    policies[section] = value
    row.policies = json.dumps(policies, sort_keys=True)
    return row


@POLICIES.on(Wallet.AlertSettingsChanged)
def alert_settings_changed(
    b: BatchBuilder, position: int, event: wallet_events.AlertSettingsChanged
) -> None:
    alerts = {
        "low_balance_threshold": _amount(event.low_balance_threshold),
        "low_balance_percent": format_amount(event.low_balance_percent),
        "burn_limit_24h": _amount(event.burn_limit_24h),
        "renotify": event.renotify,
    }
    _set_policy(b, position, event, "alerts", alerts)


@POLICIES.on(Wallet.AutoTopupChanged)
def auto_topup_changed(
    b: BatchBuilder, position: int, event: wallet_events.AutoTopupChanged
) -> None:
    auto_topup = {
        "enabled": event.enabled,
        "trigger_balance": format_amount(event.trigger_balance),
        "amount": format_amount(event.amount),
        "auto_approve": event.auto_approve,
    }
    _set_policy(b, position, event, "auto_topup", auto_topup)


@POLICIES.on(Wallet.SpendingCapsChanged)
def spending_caps_changed(
    b: BatchBuilder, position: int, event: wallet_events.SpendingCapsChanged
) -> None:
    caps = {
        category: {
            "units": cap["units"],
            "amount": _amount(cap["amount"]),
            "hard": cap.get("hard", False),
        }
        for category, cap in event.caps.items()
    }
    _set_policy(b, position, event, "spending_caps", caps)


@POLICIES.on(Wallet.TransferLimitChanged)
def transfer_limit_changed(
    b: BatchBuilder, position: int, event: wallet_events.TransferLimitChanged
) -> None:
    _set_policy(b, position, event, "transfers", {"daily_limit": _amount(event.daily_limit)})


@POLICIES.on(Wallet.CycleAnchorChanged)
def cycle_anchor_changed(
    b: BatchBuilder, position: int, event: wallet_events.CycleAnchorChanged
) -> None:
    anchor = event.anchor
    cycle = {
        "anchor_day": anchor["day"],
        "anchor_time": anchor["at"],
        "time_zone": anchor["time_zone"],
    }
    row = _set_policy(b, position, event, "cycle", cycle)
    row.next_cycle_at = event.next_cycle_at


@POLICIES.on(Wallet.CycleStarted)
def cycle_started(b: BatchBuilder, position: int, event: wallet_events.CycleStarted) -> None:
    row = b.touch_wallet(position, event)
    row.cycle_start, row.next_cycle_at = event.cycle_start, event.next_cycle_at


@POLICIES.on(Wallet.AlertRaised)
def alert_raised(b: BatchBuilder, position: int, event: wallet_events.AlertRaised) -> None:
    row = b.touch_wallet(position, event)
    detail: dict[str, Any] = {
        "balance": format_amount(event.balance),
        "available": format_amount(event.available),
        "threshold": _amount(event.threshold),
        "measured": _amount(event.measured),
    }
    if event.category is not None:
        # A spending cap: the category is blocked for the day, no balance alert is active.
        blocked = json.loads(row.blocked)
        blocked[event.category] = event.day
        row.blocked = json.dumps(blocked, sort_keys=True)
        detail.update(category=event.category, day=event.day)
    else:
        row.alerts_active = sorted({*row.alerts_active, event.alert})
    b.add_alert(position, row, event.alert, detail, event.timestamp)


@POLICIES.on(Wallet.TriggersRearmed)
def triggers_rearmed(b: BatchBuilder, position: int, event: wallet_events.TriggersRearmed) -> None:
    row = b.touch_wallet(position, event)
    row.alerts_active = [a for a in row.alerts_active if a not in event.triggers]
    recovered = sorted(t for t in event.triggers if t in BALANCE_ALERTS)
    if recovered:
        detail = {
            "balance": format_amount(event.balance),
            "available": format_amount(event.available),
            "recovered": recovered,
        }
        b.add_alert(position, row, BALANCE_RECOVERED, detail, event.timestamp)


@POLICIES.on(Wallet.AutoTopupTriggered)
def auto_topup_triggered(
    b: BatchBuilder, position: int, event: wallet_events.AutoTopupTriggered
) -> None:
    # The reactor requests the top-up; the read model only records that the wallet moved.
    b.touch_wallet(position, event)


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else format_amount(value)
