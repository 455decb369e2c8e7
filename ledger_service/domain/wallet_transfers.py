"""The wallet's daily transfer limit: how much tenant transfers (gifts) may send per day.

Every function here taking ``self: Wallet`` is a method of ``Wallet``, assigned in its class
body (see ``wallet_policies`` for why). What was sent today is counted from the transfer debits
themselves (``entries.Debited.apply`` calls ``_track_transfer`` with the event's own time), so
replay counts exactly what live decisions counted. Every transfer sent counts, operators' too;
only transfers a tenant asks for are held to the limit (an operator's is a correction).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from eventsourcing.domain import event

from ledger_service.domain import wallet_events
from ledger_service.domain.errors import TransferLimitReached
from ledger_service.domain.money import ZERO, format_amount, parse_amount
from ledger_service.domain.policies import day_bounds

if TYPE_CHECKING:
    from ledger_service.domain.wallet import Wallet


def change_transfer_limit(self: Wallet, daily_limit: Decimal | None, *, actor: str) -> None:
    if daily_limit is not None:
        daily_limit = parse_amount(daily_limit, field="transfers.daily_limit")
    self._transfer_limit_changed(daily_limit=daily_limit, actor=actor)


@event(wallet_events.TransferLimitChanged)
def _transfer_limit_changed(self: Wallet, daily_limit: Decimal | None, actor: str) -> None:
    self.transfer_limit = daily_limit


def sent_today(wallet: Wallet, now: datetime) -> Decimal:
    """What transfers sent on the day of ``now`` (the wallet's time zone)."""
    if wallet.transfer_day_ends_at is None or now >= wallet.transfer_day_ends_at:
        return ZERO
    return wallet.transferred_today


def check_transfer_allowance(self: Wallet, amount: Decimal, now: datetime) -> None:
    """Refuse a tenant transfer of ``amount`` that would take today's total past the limit."""
    limit = self.transfer_limit
    if limit is None:
        return
    sent = sent_today(self, now)
    if sent + amount > limit:
        raise TransferLimitReached(
            f"{self.company_id} may send {format_amount(limit)} a day by transfer; "
            f"{format_amount(sent)} sent today, {format_amount(amount)} more asked"
        )


def _track_transfer(self: Wallet, at: datetime, amount: Decimal) -> None:
    if self.transfer_day_ends_at is None or at >= self.transfer_day_ends_at:
        self.transfer_day, self.transfer_day_ends_at = day_bounds(at, self.cycle_anchor.zone)
        self.transferred_today = ZERO
    self.transferred_today += amount


def upcast_v7_v8(state: dict[str, Any]) -> None:
    """Version 8 added the daily transfer limit (none before) and today's transfers (a wallet
    snapshotted before counts from its next transfer on: at most one day's worth uncounted)."""
    state["transfer_limit"] = None
    state["transfer_day"] = ""
    state["transfer_day_ends_at"] = None
    state["transferred_today"] = ZERO
