"""A wallet's money entries: the two money events, their kinds, buckets and splits.

``Credited`` and ``Debited`` are the ledger's core contract, read by projections, the books and
audit tooling: never edit them, version with ``class_version``. ``Wallet`` adopts them in its
class body, so the library defines them as ``Wallet.Credited`` and ``Wallet.Debited`` (the
stored topics ``ledger_service.domain.wallet:Wallet.Credited`` and ``...Wallet.Debited``). The
enum values below are stored in their ``kind`` and ``bucket``: never rename one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate

from ledger_service.domain import accounts
from ledger_service.domain.errors import InvalidArgument
from ledger_service.domain.money import ZERO


class CreditKind(StrEnum):
    TOPUP = "topup"
    GRANT = "grant"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    TRANSFER = "transfer"


class CreditBucket(StrEnum):
    INCLUDED = "included"
    PREPAID = "prepaid"


class DebitKind(StrEnum):
    USAGE = "usage"
    TRANSFER = "transfer"
    EXPIRY = "expiry"
    """Unused included quota expiring at a cycle boundary."""


class Credited(Aggregate.Event):
    amount: Decimal
    bucket: str
    split: dict[str, Decimal]
    kind: str
    counter_account: str
    reference: str
    actor: str
    entry_hash: str


class Debited(Aggregate.Event):
    amount: Decimal
    split: dict[str, Decimal]
    kind: str
    counter_account: str
    reference: str
    sender_id: str | None
    conversation_id: str | None
    category: str | None
    units: int
    unit_price: Decimal | None
    actor: str
    entry_hash: str

    def apply(self, aggregate: Any) -> None:
        # Called by the library right after ``Wallet._debited`` with the event in hand: daily
        # caps and the burn window need the event's own time, and must follow from the event
        # on replay exactly as they did live.
        if self.kind == DebitKind.USAGE and self.category is not None:
            aggregate._track_spending(self.timestamp, self.category, self.units, self.amount)


@dataclass(frozen=True, slots=True)
class DebitSplit:
    """How one debit was drawn from the buckets, in drain order."""

    included: Decimal
    prepaid: Decimal
    postpaid: Decimal
    overage: Decimal

    def as_dict(self) -> dict[str, Decimal]:
        return {
            "included": self.included,
            "prepaid": self.prepaid,
            "postpaid": self.postpaid,
            "overage": self.overage,
        }


def split_debit(
    amount: Decimal,
    *,
    included: Decimal,
    prepaid: Decimal,
    postpaid_used: Decimal,
    postpaid_limit: Decimal,
) -> DebitSplit:
    """Drain ``amount`` in bucket order; what no bucket covers is overage."""
    from_included = min(amount, max(included, ZERO))
    rest = amount - from_included
    from_prepaid = min(rest, max(prepaid, ZERO))
    rest -= from_prepaid
    from_postpaid = min(rest, max(postpaid_limit - postpaid_used, ZERO))
    return DebitSplit(from_included, from_prepaid, from_postpaid, rest - from_postpaid)


def check_counter_account(name: str) -> None:
    if name not in accounts.COUNTER_ACCOUNTS:
        raise InvalidArgument(
            f"unknown counter account {name!r}; one of {sorted(accounts.COUNTER_ACCOUNTS)}"
        )
