"""The Refund aggregate: billed usage given back to the wallet it was charged to, at most once.

A refund's id is derived from the usage event's CloudEvents identity (``refund_id``), so there
can only ever be one per usage event: two concurrent refunds both try to create version 1 of the
same aggregate and the store lets one win. The money moves in the same transaction: the wallet's
``Credited`` entry (kind ``refund``, bucket ``drawn``, counter account ``refunds``, reference
``refund:<source>#<id>``) gives back exactly the amount the usage's ``Debited`` entry took, into
the buckets it came from in reverse drain order (``entries.split_refund``). The ``Created`` event
records who refunded, why, and which wallet entry (its version) was refunded.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from ledger_service.domain import accounts
from ledger_service.domain.entries import (
    CreditBucket,
    CreditKind,
    Debited,
    DebitKind,
    split_refund,
)
from ledger_service.domain.errors import UsageNotRefundable
from ledger_service.domain.topup import REASON_LENGTH_MAX, check_text
from ledger_service.domain.wallet import Wallet

REFUND_PREFIX = "refund:"
"""The wallet entry of a refund has the reference ``refund:<usage source>#<usage id>``."""
_NAMESPACE = UUID("0f4e5b0c-2d71-5a8e-b3c6-9d1e7f2a4b58")


def usage_reference(source: str, event_id: str) -> str:
    """How a usage event is named in its wallet entry (``Usage.reference``)."""
    return f"{source}#{event_id}"


def refund_id(source: str, event_id: str) -> UUID:
    return uuid5(_NAMESPACE, usage_reference(source, event_id))


def refund_id_of_entry(entry_reference: str) -> UUID:
    """The refund that made the wallet entry ``refund:<source>#<id>``."""
    return uuid5(_NAMESPACE, entry_reference.removeprefix(REFUND_PREFIX))


class Refund(Aggregate):
    # Fields in the order of __init__'s parameters (the stored payload's order).
    class Created(Aggregate.Created):
        company_id: str
        wallet_id: UUID
        usage_source: str
        usage_id: str
        debit_version: int
        amount: Decimal
        reason: str
        actor: str

    @staticmethod
    def create_id(usage_source: str, usage_id: str, **_: object) -> UUID:
        return refund_id(usage_source, usage_id)

    @classmethod
    def of_usage(
        cls,
        debit: Debited,
        *,
        company_id: str,
        usage_source: str,
        usage_id: str,
        reason: str,
        actor: str,
    ) -> Refund:
        """The refund of the usage entry ``debit``; refused if it is not that usage's entry or
        charged nothing."""
        reference = usage_reference(usage_source, usage_id)
        if debit.kind != DebitKind.USAGE or debit.reference != reference:
            raise UsageNotRefundable(f"the wallet entry of {reference} is not its usage charge")
        if debit.amount <= 0:
            raise UsageNotRefundable(f"usage {reference} was charged nothing")
        return cls(
            company_id=company_id,
            wallet_id=debit.originator_id,
            usage_source=usage_source,
            usage_id=usage_id,
            debit_version=debit.originator_version,
            amount=debit.amount,
            reason=check_text(reason, "reason", REASON_LENGTH_MAX, required=True),
            actor=actor,
        )

    @event(Created)
    def __init__(
        self,
        company_id: str,
        wallet_id: UUID,
        usage_source: str,
        usage_id: str,
        debit_version: int,
        amount: Decimal,
        reason: str,
        actor: str,
    ) -> None:
        self.company_id = company_id
        self.wallet_id = wallet_id
        self.usage_source = usage_source
        self.usage_id = usage_id
        self.debit_version = debit_version
        self.amount = amount
        self.reason = reason
        self.actor = actor

    @property
    def reference(self) -> str:
        """The wallet entry's reference."""
        return f"{REFUND_PREFIX}{usage_reference(self.usage_source, self.usage_id)}"


def refund_to_wallet(wallet: Wallet, refund: Refund, debit: Debited) -> dict[str, Decimal]:
    """Give ``debit`` back to ``wallet`` (the caller saves both together); where it went."""
    assert wallet.id == refund.wallet_id == debit.originator_id
    returned = split_refund(debit.split, postpaid_used=wallet.postpaid_used)
    wallet.credit(
        refund.amount,
        bucket=CreditBucket.DRAWN,
        kind=CreditKind.REFUND,
        counter_account=accounts.REFUNDS,
        reference=refund.reference,
        actor=refund.actor,
        drawn=debit.split,
    )
    return returned
