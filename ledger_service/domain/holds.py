"""Holds: the price of a message reserved before it is sent, settled by its usage event.

A hold is a request, not a fact: it is refused when the wallet's ``available`` (balance plus
postpaid credit, less what other holds reserve) does not cover it. It moves no money: it only
reserves, so it has no postings and the books are untouched. The usage event whose CloudEvents
``id`` is the hold's ``reference`` (and, if the hold names one, whose ``source`` matches) settles
it in the same save as its deduction: the hold closes and the actual price is charged as any
usage is. A ``failed`` usage event, an operator or the sender (``DELETE``) releases it; at
``expires_at`` the scheduler expires it. Each closes a hold once: only active holds are held by
the wallet, by reference.

Pure values and rules; the ``Wallet`` holds its holds (``wallet_holds``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID, uuid5

from ledger_service.domain.errors import InvalidArgument

TTL_DEFAULT_S = 300
TTL_MAX_S = 3600
UNITS_MAX = 1_000_000


class HoldStatus(StrEnum):
    """Stored in ``HoldClosed.status`` (never rename one)."""

    SETTLED = "settled"
    """Its usage event arrived (and was charged)."""
    RELEASED = "released"
    """Released by a caller, or by a ``failed`` usage event (nothing charged)."""
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Hold:
    """An active hold as the wallet holds it."""

    hold_id: str
    reference: str
    source: str | None
    sender_id: str
    category: str
    units: int
    amount: Decimal
    expires_at: datetime
    placed_at: datetime
    actor: str

    def matches(self, source: str) -> bool:
        """Does a usage event from ``source`` (with this reference as its id) settle it?"""
        return self.source is None or self.source == source

    def expired_by(self, now: datetime) -> bool:
        return self.expires_at <= now

    def same_request(self, sender_id: str, category: str, units: int, source: str | None) -> bool:
        """A repeated request for this hold (answered with it) rather than a different one."""
        return (self.sender_id, self.category, self.units, self.source) == (
            sender_id,
            category,
            units,
            source,
        )


def hold_id(wallet_id: UUID, reference: str) -> UUID:
    """One active hold per wallet and reference: the id follows from them."""
    return uuid5(wallet_id, f"hold/{reference}")


def check_ttl(ttl_s: int) -> int:
    if not 1 <= ttl_s <= TTL_MAX_S:
        raise InvalidArgument(f"ttl_s must be between 1 and {TTL_MAX_S} seconds, got {ttl_s}")
    return ttl_s


def check_units(units: int) -> int:
    if not 1 <= units <= UNITS_MAX:
        raise InvalidArgument(f"units must be between 1 and {UNITS_MAX}, got {units}")
    return units
