"""Credit grants by an operator: issue promotional or goodwill credit, void what is left of it.

Expiry is not a command: the cycle scheduler (``service.cycles``) expires due grants along with
due billing cycles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar, Literal, NotRequired, TypedDict
from uuid import UUID

from ledger_service.domain.errors import InvalidArgument
from ledger_service.domain.grants import PRIORITY_DEFAULT, Grant, check_priority, grant_id
from ledger_service.domain.money import format_amount, parse_amount
from ledger_service.service.runner import Command, Decision
from ledger_service.service.values import set_field

if TYPE_CHECKING:
    from ledger_service.service.ledger import LedgerApplication

REFERENCE_LENGTH_MAX = 200
GrantStatusText = Literal["active", "expired", "voided"]


class GrantState(TypedDict):
    grant_id: str
    company_id: str
    status: GrantStatusText
    amount: str
    remaining: str
    priority: int
    expires_at: str | None
    granted_at: str
    reason: str
    reference: str
    granted_by: str
    position: NotRequired[int | None]


def grant_state(company_id: str, grant: Grant) -> GrantState:
    return {
        "grant_id": grant.grant_id,
        "company_id": company_id,
        "status": grant.status.value,
        "amount": format_amount(grant.amount),
        "remaining": format_amount(grant.remaining),
        "priority": grant.priority,
        "expires_at": None if grant.expires_at is None else grant.expires_at.isoformat(),
        "granted_at": grant.granted_at.isoformat(),
        "reason": grant.reason,
        "reference": grant.reference,
        "granted_by": grant.actor,
    }


@dataclass(frozen=True, kw_only=True)
class IssueGrant(Command[GrantState]):
    """Give a wallet credit that usage drains after the included quota, expiring at
    ``expires_at`` (never when None). One grant per ``reference`` and wallet."""

    name: ClassVar[str] = "issue_grant"
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"company_id"})

    company_id: str
    amount: Decimal
    reason: str
    reference: str
    priority: int = PRIORITY_DEFAULT
    expires_at: datetime | None = None
    pool_sender_id: str | None = None

    def __post_init__(self) -> None:
        set_field(self, "amount", parse_amount(self.amount, allow_zero=False))
        check_priority(self.priority)
        if not self.reason.strip():
            raise InvalidArgument("a grant needs a reason")
        if not 0 < len(self.reference) <= REFERENCE_LENGTH_MAX:
            raise InvalidArgument(f"reference must be 1-{REFERENCE_LENGTH_MAX} characters")

    def scope(self, ledger: LedgerApplication) -> str:
        return self.company_id

    def decide(self, ledger: LedgerApplication) -> Decision[GrantState]:
        wallet = ledger.get_wallet(self.company_id, self.pool_sender_id)
        grant = wallet.issue_grant(
            grant_id=str(grant_id(wallet.id, self.reference)),
            amount=self.amount,
            reason=self.reason,
            reference=self.reference,
            actor=self.actor,
            priority=self.priority,
            expires_at=self.expires_at,
            now=datetime.now(UTC),
        )
        return Decision([wallet], grant_state(self.company_id, grant))


@dataclass(frozen=True, kw_only=True)
class VoidGrant(Command[GrantState]):
    """Close an active grant now; its remainder is taken (kind ``expiry``, to promotions)."""

    name: ClassVar[str] = "void_grant"
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"company_id"})

    company_id: str
    grant_id: UUID
    pool_sender_id: str | None = None

    def scope(self, ledger: LedgerApplication) -> str:
        return self.company_id

    def decide(self, ledger: LedgerApplication) -> Decision[GrantState]:
        wallet = ledger.get_wallet(self.company_id, self.pool_sender_id)
        grant = wallet.void_grant(str(self.grant_id), actor=self.actor)
        return Decision([wallet], grant_state(self.company_id, grant))
