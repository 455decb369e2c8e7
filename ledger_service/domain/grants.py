"""Credit grants: promotional or goodwill credit an operator gives a wallet, which may expire.

A grant is drained after the included quota and before prepaid money, grants among themselves
by ``priority`` (lower first), then soonest expiry (a grant that never expires comes last), then
oldest. What a debit takes from each grant is part of its split, one part per grant under the key
``grant:<grant id>`` (present only when non-zero, so splits without grants keep their shape and
hash), and what a credit gives back to a grant likewise. The grant's remainder expires at
``expires_at`` (a debit of kind ``expiry`` against ``promotions``), or is voided by an operator;
either closes the grant, once.

Pure functions and an immutable value: the ``Wallet`` holds its grants (``wallet_grants``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID, uuid5

from ledger_service.domain.errors import InvalidArgument, NotInFuture

GRANT_PREFIX = "grant:"
"""Split keys of grant parts, and the ``reference`` of a grant's entries."""
PRIORITY_DEFAULT = 10
PRIORITY_MAX = 1000
_NEVER = datetime.max.replace(tzinfo=None)


class GrantStatus(StrEnum):
    """Stored in ``GrantClosed.status`` (never rename one)."""

    ACTIVE = "active"
    EXPIRED = "expired"
    VOIDED = "voided"


@dataclass(frozen=True, slots=True)
class Grant:
    """One grant as the wallet holds it; replaced, never mutated, when its remainder changes."""

    grant_id: str
    amount: Decimal
    remaining: Decimal
    priority: int
    expires_at: datetime | None
    granted_at: datetime
    reason: str
    reference: str
    actor: str
    status: GrantStatus = GrantStatus.ACTIVE

    @property
    def active(self) -> bool:
        return self.status is GrantStatus.ACTIVE

    def drain_key(self) -> tuple[int, datetime, datetime, str]:
        """Priority, then soonest expiry (never expiring last), then oldest."""
        expires = _NEVER if self.expires_at is None else self.expires_at.replace(tzinfo=None)
        return (self.priority, expires, self.granted_at.replace(tzinfo=None), self.grant_id)

    def expired_by(self, now: datetime) -> bool:
        return self.active and self.expires_at is not None and self.expires_at <= now

    def with_remaining(self, remaining: Decimal) -> Grant:
        return replace(self, remaining=remaining)

    def closed(self, status: GrantStatus) -> Grant:
        return replace(self, status=status)


def grant_id(wallet_id: UUID, reference: str) -> UUID:
    """A grant's id follows from its wallet and the operator's ``reference``, so a retried
    request finds the grant it made instead of granting twice."""
    return uuid5(wallet_id, f"grant/{reference}")


def part_key(grant_id_: str) -> str:
    return f"{GRANT_PREFIX}{grant_id_}"


def grant_parts(split: Mapping[str, Decimal]) -> Iterator[tuple[str, Decimal]]:
    """(grant id, amount) of each grant part of a split."""
    for key, amount in split.items():
        if key.startswith(GRANT_PREFIX):
            yield key[len(GRANT_PREFIX) :], amount


def drain(amount: Decimal, grants: Iterable[Grant]) -> dict[str, Decimal]:
    """What ``amount`` takes from each active grant, in drain order (split keys); the caller
    takes the rest from the next bucket."""
    parts: dict[str, Decimal] = {}
    rest = amount
    for grant in sorted((g for g in grants if g.active and g.remaining > 0), key=Grant.drain_key):
        if rest <= 0:
            break
        taken = min(rest, grant.remaining)
        parts[part_key(grant.grant_id)] = taken
        rest -= taken
    return parts


def check_priority(priority: int) -> int:
    if not 0 <= priority <= PRIORITY_MAX:
        raise InvalidArgument(f"priority must be between 0 and {PRIORITY_MAX}, got {priority}")
    return priority


def check_expiry(expires_at: datetime | None, now: datetime) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise InvalidArgument("expires_at needs a time zone (e.g. 2026-12-31T23:59:59Z)")
    if expires_at <= now:
        raise NotInFuture(f"expires_at {expires_at.isoformat()} is not in the future")
    return expires_at
