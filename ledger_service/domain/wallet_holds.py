"""The wallet's holds: place, settle (by a usage event), release, expire (rules in ``holds``).

Every function here taking ``self: Wallet`` is a method of ``Wallet``, assigned in its class
body (see ``wallet_policies`` for why); the events are ``Wallet.HoldPlaced`` and
``Wallet.HoldClosed``. The wallet holds only its active holds, by reference, and their sum
(``held``), which ``available`` deducts. Closing a hold removes it, so it closes once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from eventsourcing.domain import event

from ledger_service.domain import wallet_events
from ledger_service.domain.errors import (
    HoldConflict,
    HoldNotFound,
    InsufficientAvailableBalance,
    SpendingCapReached,
)
from ledger_service.domain.holds import Hold, HoldStatus, check_ttl, check_units
from ledger_service.domain.triggers import SpendingDay

if TYPE_CHECKING:
    from ledger_service.domain.wallet import Wallet


def place_hold(
    self: Wallet,
    *,
    hold_id: str,
    reference: str,
    source: str | None,
    sender_id: str,
    category: str,
    units: int,
    ttl_s: int,
    actor: str,
    now: datetime,
) -> Hold:
    """Reserve the price of ``units`` of ``category`` for the message ``reference`` until
    ``now + ttl_s``; refused (nothing written) for an unlinked sender, an unknown or capped
    category, or when ``available`` does not cover it. The same request again is answered with
    the hold it made; another request for an active reference is a conflict."""
    existing = self.holds.get(reference)
    if existing is not None:
        if existing.same_request(sender_id, category, units, source):
            return existing
        raise HoldConflict(f"hold {reference!r} is active with another sender, category or units")
    check_units(units)
    check_ttl(ttl_s)
    self.check_sender_linked(sender_id)
    amount = self.price_of(category, units)
    if self.blocked.get(category) == SpendingDay.of(now, self.cycle_anchor.zone).day:
        raise SpendingCapReached(f"today's spending cap of {category} is reached")
    if self.available < amount:
        raise InsufficientAvailableBalance(
            f"a hold of {amount} exceeds the available {self.available} of {self.company_id}"
        )
    self._hold_placed(
        hold_id=hold_id,
        reference=reference,
        source=source,
        sender_id=sender_id,
        category=category,
        units=units,
        amount=amount,
        expires_at=now + timedelta(seconds=ttl_s),
        actor=actor,
        timestamp=None,
    )
    return self.holds[reference]


@event(wallet_events.HoldPlaced)
def _hold_placed(
    self: Wallet,
    hold_id: str,
    reference: str,
    source: str | None,
    sender_id: str,
    category: str,
    units: int,
    amount: Decimal,
    expires_at: datetime,
    actor: str,
    timestamp: datetime | None,
) -> None:
    # None when triggered (the library stamps the event); applied, it is the event's own time.
    assert timestamp is not None
    self.holds[reference] = Hold(
        hold_id, reference, source, sender_id, category, units, amount, expires_at, timestamp, actor
    )
    self.held += amount


def settle_hold(
    self: Wallet, *, source: str, event_id: str, billable: bool, actor: str, now: datetime
) -> Hold | None:
    """The usage event (``source``, ``event_id``) closes its hold, if one is active: settled
    when it is billable (the caller charges it as usage), released when it failed."""
    hold = self.holds.get(event_id)
    if hold is None or not hold.matches(source):
        return None
    _close(self, hold, HoldStatus.SETTLED if billable else HoldStatus.RELEASED, now, actor)
    return hold


def release_hold(self: Wallet, hold_id: str, *, actor: str, now: datetime) -> Hold:
    """Release an active hold now (its message will not be sent)."""
    for hold in self.holds.values():
        if hold.hold_id == hold_id:
            _close(self, hold, HoldStatus.RELEASED, now, actor)
            return hold
    raise HoldNotFound(f"no active hold {hold_id} on the wallet of {self.company_id}")


def expire_due_holds(self: Wallet, now: datetime, *, actor: str) -> int:
    """Expire every hold whose ``expires_at`` has passed by ``now``, soonest first; a run after
    downtime catches up, a repeated run finds nothing. Returns how many expired."""
    due = sorted((h for h in self.holds.values() if h.expired_by(now)), key=_expiry)
    for hold in due:
        _close(self, hold, HoldStatus.EXPIRED, now, actor)
    return len(due)


def _expiry(hold: Hold) -> tuple[datetime, str]:
    return (hold.expires_at, hold.reference)


def _close(wallet: Wallet, hold: Hold, status: HoldStatus, as_of: datetime, actor: str) -> None:
    wallet._hold_closed(
        hold_id=hold.hold_id,
        reference=hold.reference,
        status=status.value,
        amount=hold.amount,
        as_of=as_of,
        actor=actor,
    )


@event(wallet_events.HoldClosed)
def _hold_closed(
    self: Wallet,
    hold_id: str,
    reference: str,
    status: str,
    amount: Decimal,
    as_of: datetime,
    actor: str,
) -> None:
    del self.holds[reference]
    self.held -= amount
