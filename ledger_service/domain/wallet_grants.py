"""The wallet's credit grants: issue, expire, void (the rules of a grant are in ``grants``).

Every function here taking ``self: Wallet`` is a method of ``Wallet``, assigned in its class
body (see ``wallet_policies`` for why); the events are ``Wallet.GrantIssued`` and
``Wallet.GrantClosed``. A grant's money moves only in ``Credited``/``Debited`` entries against
``promotions``: issuing credits the grant, usage drains it (``entries.split_debit``), and closing
it debits its remainder (kind ``expiry``) just before ``GrantClosed``, so a closed grant never
holds money and a remainder is taken exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from eventsourcing.domain import event

from ledger_service.domain import accounts, wallet_events
from ledger_service.domain.entries import CreditBucket, CreditKind, DebitKind, DebitSplit
from ledger_service.domain.errors import GrantAlreadyExists, GrantClosed, GrantNotFound
from ledger_service.domain.grants import (
    GRANT_PREFIX,
    Grant,
    GrantStatus,
    check_expiry,
    check_priority,
    grant_parts,
    part_key,
)
from ledger_service.domain.money import ZERO, parse_amount

if TYPE_CHECKING:
    from ledger_service.domain.wallet import Wallet


def issue_grant(
    self: Wallet,
    *,
    grant_id: str,
    amount: Decimal,
    reason: str,
    reference: str,
    actor: str,
    priority: int,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> Grant:
    """Give the wallet ``amount`` of credit that usage drains after the included quota (see
    ``grants`` for the order) and that expires at ``expires_at`` (never when None)."""
    amount = parse_amount(amount, allow_zero=False)
    check_priority(priority)
    check_expiry(expires_at, now or datetime.now(UTC))
    if grant_id in self.grants:
        raise GrantAlreadyExists(f"grant {reference!r} was already issued to {self.company_id}")
    self._grant_issued(
        grant_id=grant_id,
        amount=amount,
        priority=priority,
        expires_at=expires_at,
        reason=reason,
        reference=reference,
        actor=actor,
        timestamp=None,
    )
    self.credit(
        amount,
        bucket=CreditBucket.GRANTS,
        kind=CreditKind.GRANT,
        counter_account=accounts.PROMOTIONS,
        reference=part_key(grant_id),
        actor=actor,
        grant_id=grant_id,
    )
    return self.grants[grant_id]


@event(wallet_events.GrantIssued)
def _grant_issued(
    self: Wallet,
    grant_id: str,
    amount: Decimal,
    priority: int,
    expires_at: datetime | None,
    reason: str,
    reference: str,
    actor: str,
    timestamp: datetime | None,
) -> None:
    # None when triggered (the library stamps the event); applied, it is the event's own time.
    assert timestamp is not None
    # Remaining zero: the money arrives with the Credited entry that follows.
    self.grants[grant_id] = Grant(
        grant_id, amount, ZERO, priority, expires_at, timestamp, reason, reference, actor
    )


def expire_due_grants(self: Wallet, now: datetime, *, actor: str) -> int:
    """Close every active grant whose ``expires_at`` has passed by ``now``, soonest first,
    taking its remainder. A closed grant is never due again, so a run after downtime catches
    up and a repeated run does nothing. Returns how many grants expired."""
    due = sorted((g for g in self.grants.values() if g.expired_by(now)), key=Grant.drain_key)
    for grant in due:
        _close(self, grant, GrantStatus.EXPIRED, now, actor)
    if due:
        self._evaluate_triggers()
    return len(due)


def void_grant(self: Wallet, grant_id: str, *, actor: str, now: datetime | None = None) -> Grant:
    """Close an active grant now, taking its remainder (an operator's decision)."""
    grant = self.grants.get(grant_id)
    if grant is None:
        raise GrantNotFound(f"no grant {grant_id} on the wallet of {self.company_id}")
    if not grant.active:
        raise GrantClosed(f"grant {grant_id} is already {grant.status.value}")
    _close(self, grant, GrantStatus.VOIDED, now or datetime.now(UTC), actor)
    self._evaluate_triggers()
    return self.grants[grant_id]


def _close(wallet: Wallet, grant: Grant, status: GrantStatus, as_of: datetime, actor: str) -> None:
    remainder = grant.remaining
    _take_remainder(wallet, grant, status, actor)
    wallet._grant_closed(
        grant_id=grant.grant_id, status=status.value, remainder=remainder, as_of=as_of, actor=actor
    )


def _take_remainder(wallet: Wallet, grant: Grant, status: GrantStatus, actor: str) -> None:
    if grant.remaining > 0:
        wallet._debit_entry(
            grant.remaining,
            DebitSplit(ZERO, ZERO, ZERO, ZERO, {part_key(grant.grant_id): grant.remaining}),
            kind=DebitKind.EXPIRY,
            counter_account=accounts.PROMOTIONS,
            reference=f"{GRANT_PREFIX}{grant.grant_id}:{status.value}",
            actor=actor,
        )


@event(wallet_events.GrantClosed)
def _grant_closed(
    self: Wallet, grant_id: str, status: str, remainder: Decimal, as_of: datetime, actor: str
) -> None:
    self.grants[grant_id] = self.grants[grant_id].closed(GrantStatus(status))


def retake_closed_remainders(self: Wallet, *, actor: str) -> None:
    """A refund gives a grant back what usage took from it; if the grant has closed since,
    that money expires again at once (as it would have), so a closed grant holds nothing."""
    for grant in list(self.grants.values()):
        if not grant.active and grant.remaining > 0:
            _take_remainder(self, grant, grant.status, actor)


def apply_grant_parts(self: Wallet, split: dict[str, Decimal], sign: int) -> None:
    """A money entry's grant parts onto the grants (called by the entry's event method)."""
    for grant_id, part in grant_parts(split):
        grant = self.grants[grant_id]
        self.grants[grant_id] = grant.with_remaining(grant.remaining + sign * part)
        self.granted += sign * part
