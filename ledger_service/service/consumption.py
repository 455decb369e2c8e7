"""Synchronous consumption over the API (``domain.consumption``): charge a feature now, or
refuse it, keyed by the caller's reference so a retry is answered and never charged twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, NotRequired, TypedDict

from ledger_service.domain.consumption import consume
from ledger_service.domain.holds import check_units
from ledger_service.domain.ids import check_key
from ledger_service.domain.money import ZERO, format_amount
from ledger_service.domain.topup import check_text
from ledger_service.service.runner import IDEMPOTENCY_KEY_LENGTH_MAX, Command, Decision

if TYPE_CHECKING:
    from ledger_service.service.ledger import LedgerApplication

KEY_PREFIX = "consume:"
REFERENCE_LENGTH_MAX = IDEMPOTENCY_KEY_LENGTH_MAX - len(KEY_PREFIX)
"""The reference keys the command, so it must fit in a key with its prefix."""


class ConsumptionState(TypedDict):
    company_id: str
    feature: str
    units: int
    reference: str
    unit_price: str
    amount: str
    currency: str
    split: dict[str, str]
    """Where the amount came from: included, grants, prepaid, postpaid."""
    balance: str
    available: str
    position: NotRequired[int | None]


def idempotency_key_of(reference: str) -> str:
    """The command's key: the reference (one charge per reference and company)."""
    return f"{KEY_PREFIX}{reference}"


@dataclass(frozen=True, kw_only=True)
class ConsumeFeature(Command[ConsumptionState]):
    """Charge ``units`` of ``feature`` from the company's shared wallet, now."""

    name: ClassVar[str] = "consume_feature"
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"company_id"})

    company_id: str
    feature: str
    units: int
    reference: str

    def __post_init__(self) -> None:
        check_key(self.company_id, "company_id")
        check_key(self.feature, "feature")
        check_units(self.units)
        check_text(self.reference, "reference", REFERENCE_LENGTH_MAX, required=True)

    def scope(self, ledger: LedgerApplication) -> str:
        return self.company_id

    def decide(self, ledger: LedgerApplication) -> Decision[ConsumptionState]:
        wallet = ledger.get_wallet(self.company_id)
        consumed = consume(
            wallet,
            feature=self.feature,
            units=self.units,
            reference=self.reference,
            actor=self.actor,
            now=datetime.now(UTC),
        )
        split = consumed.split
        return Decision(
            [wallet],
            {
                "company_id": self.company_id,
                "feature": self.feature,
                "units": self.units,
                "reference": self.reference,
                "unit_price": format_amount(consumed.unit_price),
                "amount": format_amount(consumed.amount),
                "currency": wallet.currency,
                "split": {
                    "included": format_amount(split.included),
                    "grants": format_amount(sum((split.grants or {}).values(), ZERO)),
                    "prepaid": format_amount(split.prepaid),
                    "postpaid": format_amount(split.postpaid),
                },
                "balance": format_amount(wallet.balance),
                "available": format_amount(wallet.available),
            },
        )
