"""Usage refunds by an operator: give back what one usage event was charged, once.

The consumer refunds usage reported ``failed`` after billing by the same rules
(``service.usage``); both create the one ``Refund`` a usage event can have.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar, NotRequired, TypedDict

from ledger_service.domain.errors import (
    UsageAlreadyRefunded,
    UsageNotFound,
    UsageNotRefundable,
)
from ledger_service.domain.ids import check_key
from ledger_service.domain.money import format_amount
from ledger_service.domain.refund import Refund, refund_id, refund_to_wallet, usage_reference
from ledger_service.service.runner import Command, Decision

if TYPE_CHECKING:
    from ledger_service.service.ledger import LedgerApplication


class RefundState(TypedDict):
    refund_id: str
    company_id: str
    usage_source: str
    usage_id: str
    amount: str
    returned_to: dict[str, str]
    """Where the money went back: ``included``, ``prepaid``, ``postpaid`` (debt repaid)."""
    reason: str
    refunded_by: str
    position: NotRequired[int | None]


@dataclass(frozen=True, kw_only=True)
class RefundUsage(Command[RefundState]):
    """Give back the charge of one billed usage event (CloudEvents source and id)."""

    name: ClassVar[str] = "refund_usage"
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"company_id"})

    company_id: str
    usage_source: str
    usage_id: str
    reason: str

    def __post_init__(self) -> None:
        check_key(self.company_id, "company_id")

    def scope(self, ledger: LedgerApplication) -> str:
        return self.company_id

    def decide(self, ledger: LedgerApplication) -> Decision[RefundState]:
        key = (self.usage_source, self.usage_id)
        reference = usage_reference(*key)
        charge = ledger.command_store.select_usage_charges([key]).get(key)
        if charge is None or charge.company_id != self.company_id:
            raise UsageNotFound(f"no usage event {reference} of {self.company_id}")
        if ledger.refund_exists(refund_id(*key)):
            raise UsageAlreadyRefunded(f"usage event {reference} was already refunded")
        if charge.wallet_id is None:
            raise UsageNotRefundable(
                f"usage event {reference} was recorded before refunds were tracked: "
                "correct its wallet with an adjustment"
            )
        debit = ledger.charge_entry(charge)
        if debit is None:
            raise UsageNotRefundable(f"usage event {reference} was not billed (status failed)")
        wallet = ledger.get_wallet_by_id(charge.wallet_id)
        refund = Refund.of_usage(
            debit,
            company_id=self.company_id,
            usage_source=self.usage_source,
            usage_id=self.usage_id,
            reason=self.reason,
            actor=self.actor,
        )
        returned = refund_to_wallet(wallet, refund, debit)
        return Decision([refund, wallet], refund_state(refund, returned))


def refund_state(refund: Refund, returned: dict[str, Decimal]) -> RefundState:
    return {
        "refund_id": str(refund.id),
        "company_id": refund.company_id,
        "usage_source": refund.usage_source,
        "usage_id": refund.usage_id,
        "amount": format_amount(refund.amount),
        "returned_to": {name: format_amount(part) for name, part in returned.items() if part},
        "reason": refund.reason,
        "refunded_by": refund.actor,
    }
