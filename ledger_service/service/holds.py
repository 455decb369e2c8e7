"""Holds by upstream senders (or operators): reserve the price of a message before sending it,
release it if the message is not sent. Settlement is the usage event's (``domain.usage``) and
expiry the scheduler's (``service.cycles``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, Literal, NotRequired, TypedDict
from uuid import UUID

from ledger_service.domain.holds import TTL_DEFAULT_S, Hold, hold_id
from ledger_service.domain.ids import check_key
from ledger_service.domain.money import format_amount
from ledger_service.service.runner import Command, Decision

if TYPE_CHECKING:
    from ledger_service.domain.wallet import Wallet
    from ledger_service.service.ledger import LedgerApplication

HoldStatusText = Literal["active", "settled", "released", "expired"]


class HoldState(TypedDict):
    hold_id: str
    company_id: str
    status: HoldStatusText
    reference: str
    source: str | None
    waba_id: str
    category: str
    units: int
    amount: str
    currency: str
    expires_at: str
    available: str
    """The wallet's available balance right after (holds deducted)."""
    position: NotRequired[int | None]


def hold_state(wallet: Wallet, hold: Hold, status: HoldStatusText) -> HoldState:
    return {
        "hold_id": hold.hold_id,
        "company_id": wallet.company_id,
        "status": status,
        "reference": hold.reference,
        "source": hold.source,
        "waba_id": hold.sender_id,
        "category": hold.category,
        "units": hold.units,
        "amount": format_amount(hold.amount),
        "currency": wallet.currency,
        "expires_at": hold.expires_at.isoformat(),
        "available": format_amount(wallet.available),
    }


@dataclass(frozen=True, kw_only=True)
class PlaceHold(Command[HoldState]):
    """Reserve the rate-card price of ``units`` of ``category`` for the message whose
    CloudEvents id is ``reference``, for ``ttl_s`` seconds."""

    name: ClassVar[str] = "place_hold"
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"company_id"})

    company_id: str
    waba_id: str
    category: str
    units: int
    reference: str
    source: str | None = None
    ttl_s: int = TTL_DEFAULT_S

    def __post_init__(self) -> None:
        check_key(self.company_id, "company_id")

    def scope(self, ledger: LedgerApplication) -> str:
        return self.company_id

    def decide(self, ledger: LedgerApplication) -> Decision[HoldState]:
        wallet = ledger.wallet_for_sender(self.waba_id, self.company_id)
        hold = wallet.place_hold(
            hold_id=str(hold_id(wallet.id, self.reference)),
            reference=self.reference,
            source=self.source,
            sender_id=self.waba_id,
            category=self.category,
            units=self.units,
            ttl_s=self.ttl_s,
            actor=self.actor,
            now=datetime.now(UTC),
        )
        return Decision([wallet], hold_state(wallet, hold, "active"))


@dataclass(frozen=True, kw_only=True)
class ReleaseHold(Command[HoldState]):
    """Release an active hold: its message will not be sent."""

    name: ClassVar[str] = "release_hold"
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"company_id"})

    company_id: str
    hold_id: UUID
    pool_sender_id: str | None = None

    def scope(self, ledger: LedgerApplication) -> str:
        return self.company_id

    def decide(self, ledger: LedgerApplication) -> Decision[HoldState]:
        wallet = ledger.get_wallet(self.company_id, self.pool_sender_id)
        hold = wallet.release_hold(str(self.hold_id), actor=self.actor, now=datetime.now(UTC))
        return Decision([wallet], hold_state(wallet, hold, "released"))
