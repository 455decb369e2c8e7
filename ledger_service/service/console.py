"""Console sign-in: redeeming a one-time login link, exactly once.

The link itself (its signature and expiry) is checked by the console before it asks for this
command; the command makes the link single-use. Each redemption runs under a fresh idempotency
key (the new session's id), so a second use of a link is never answered with the first use's
result: it finds the link's ``ConsoleSignIn`` already written and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypedDict

from eventsourcing.application import AggregateNotFoundError

from ledger_service.domain.console_sign_in import ConsoleSignIn
from ledger_service.domain.errors import LoginLinkUsed
from ledger_service.domain.ids import console_sign_in_id
from ledger_service.service.runner import Command, Decision

if TYPE_CHECKING:
    from ledger_service.service.ledger import LedgerApplication

SCOPE = "#console-sign-ins"
"""Idempotency keys of sign-ins: '#' is in no company id, so no company shares them."""


class SignedIn(TypedDict):
    session_id: str


@dataclass(frozen=True, kw_only=True)
class RedeemLoginLink(Command[SignedIn]):
    """``actor`` is the link's subject; ``idempotency_key`` the new session's id."""

    name: ClassVar[str] = "redeem_login_link"

    link_id: str
    company_id: str | None
    scopes: tuple[str, ...]

    def scope(self, ledger: LedgerApplication) -> str:
        return SCOPE

    def decide(self, ledger: LedgerApplication) -> Decision[SignedIn]:
        try:
            ledger.repository.get(console_sign_in_id(self.link_id))
        except AggregateNotFoundError:
            sign_in = ConsoleSignIn(
                link_id=self.link_id,
                subject=self.actor,
                company_id=self.company_id,
                scopes=sorted(self.scopes),
                session_id=self.idempotency_key,
            )
            return Decision([sign_in], {"session_id": self.idempotency_key})
        raise LoginLinkUsed("this login link was already used; ask for a new one")
