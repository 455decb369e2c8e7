"""How a wallet's policy values are written into snapshots (events hold plain values only).

Each transcoding's ``name`` and data shape are stored in snapshots: never change one; add a new
transcoding (and keep decoding the old) or upcast the snapshot state instead. Amounts and times
inside the data are encoded by the library's own transcodings.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Transcoding

from ledger_service.domain.grants import Grant, GrantStatus
from ledger_service.domain.holds import Hold
from ledger_service.domain.policies import (
    RENOTIFY_PER_CROSSING,
    AlertSettings,
    AutoTopup,
    CycleAnchor,
    SpendingCap,
)
from ledger_service.domain.triggers import BurnWindow, SpendingDay, Tally


class AlertSettingsAsDict(Transcoding):
    type = AlertSettings
    name = "wallet_alert_settings"

    def encode(self, obj: AlertSettings) -> dict[str, Any]:
        return {
            "low_balance_threshold": obj.low_balance_threshold,
            "low_balance_percent": obj.low_balance_percent,
            "burn_limit_24h": obj.burn_limit_24h,
            "renotify": obj.renotify,
        }

    def decode(self, data: dict[str, Any]) -> AlertSettings:
        return AlertSettings(
            data["low_balance_threshold"],
            data["low_balance_percent"],
            data["burn_limit_24h"],
            # Snapshots from before ``renotify`` existed: today's default, per crossing.
            data.get("renotify", RENOTIFY_PER_CROSSING),
        )


class AutoTopupAsDict(Transcoding):
    type = AutoTopup
    name = "wallet_auto_topup"

    def encode(self, obj: AutoTopup) -> dict[str, Any]:
        return {
            "enabled": obj.enabled,
            "trigger_balance": obj.trigger_balance,
            "amount": obj.amount,
            "auto_approve": obj.auto_approve,
        }

    def decode(self, data: dict[str, Any]) -> AutoTopup:
        return AutoTopup(
            data["enabled"], data["trigger_balance"], data["amount"], data["auto_approve"]
        )


class SpendingCapAsDict(Transcoding):
    type = SpendingCap
    name = "wallet_spending_cap"

    def encode(self, obj: SpendingCap) -> dict[str, Any]:
        return obj.as_dict()

    def decode(self, data: dict[str, Any]) -> SpendingCap:
        return SpendingCap.from_dict(data)


class CycleAnchorAsDict(Transcoding):
    type = CycleAnchor
    name = "wallet_cycle_anchor"

    def encode(self, obj: CycleAnchor) -> dict[str, object]:
        return obj.as_dict()

    def decode(self, data: dict[str, object]) -> CycleAnchor:
        return CycleAnchor.from_dict(data)


class SpendingDayAsDict(Transcoding):
    """Today's tallies as ``{category: [units, amount]}``."""

    type = SpendingDay
    name = "wallet_spending_day"

    def encode(self, obj: SpendingDay) -> dict[str, Any]:
        return {
            "day": obj.day,
            "ends_at": obj.ends_at,
            "categories": {c: [t.units, t.amount] for c, t in obj.categories.items()},
        }

    def decode(self, data: dict[str, Any]) -> SpendingDay:
        categories = {c: Tally(units, amount) for c, (units, amount) in data["categories"].items()}
        return SpendingDay(data["day"], data["ends_at"], categories)


class BurnWindowAsPairs(Transcoding):
    """The hours as ``[[hour, amount], ...]``: JSON object keys could only be strings."""

    type = BurnWindow
    name = "wallet_burn_window"

    def encode(self, obj: BurnWindow) -> list[list[Any]]:
        return [[hour, amount] for hour, amount in obj.hours.items()]

    def decode(self, data: list[list[Any]]) -> BurnWindow:
        return BurnWindow({int(hour): amount for hour, amount in data})


class GrantAsDict(Transcoding):
    type = Grant
    name = "wallet_grant"

    def encode(self, obj: Grant) -> dict[str, Any]:
        return {
            "grant_id": obj.grant_id,
            "amount": obj.amount,
            "remaining": obj.remaining,
            "priority": obj.priority,
            "expires_at": obj.expires_at,
            "granted_at": obj.granted_at,
            "reason": obj.reason,
            "reference": obj.reference,
            "actor": obj.actor,
            "status": obj.status.value,
        }

    def decode(self, data: dict[str, Any]) -> Grant:
        return Grant(
            data["grant_id"],
            data["amount"],
            data["remaining"],
            data["priority"],
            data["expires_at"],
            data["granted_at"],
            data["reason"],
            data["reference"],
            data["actor"],
            GrantStatus(data["status"]),
        )


class HoldAsDict(Transcoding):
    type = Hold
    name = "wallet_hold"

    def encode(self, obj: Hold) -> dict[str, Any]:
        return {
            "hold_id": obj.hold_id,
            "reference": obj.reference,
            "source": obj.source,
            "sender_id": obj.sender_id,
            "category": obj.category,
            "units": obj.units,
            "amount": obj.amount,
            "expires_at": obj.expires_at,
            "placed_at": obj.placed_at,
            "actor": obj.actor,
        }

    def decode(self, data: dict[str, Any]) -> Hold:
        return Hold(
            data["hold_id"],
            data["reference"],
            data["source"],
            data["sender_id"],
            data["category"],
            data["units"],
            data["amount"],
            data["expires_at"],
            data["placed_at"],
            data["actor"],
        )


POLICY_TRANSCODINGS: tuple[Transcoding, ...] = (
    GrantAsDict(),
    HoldAsDict(),
    AlertSettingsAsDict(),
    AutoTopupAsDict(),
    SpendingCapAsDict(),
    CycleAnchorAsDict(),
    SpendingDayAsDict(),
    BurnWindowAsPairs(),
)
