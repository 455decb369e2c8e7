"""A wallet's money entries: the two money events, their kinds, buckets and splits.

``Credited`` and ``Debited`` are the ledger's core contract, read by projections, the books and
audit tooling: never edit them, version with ``class_version``. ``Wallet`` adopts them in its
class body, so the library defines them as ``Wallet.Credited`` and ``Wallet.Debited`` (the
stored topics ``ledger_service.domain.wallet:Wallet.Credited`` and ``...Wallet.Debited``). The
enum values below are stored in their ``kind`` and ``bucket``: never rename one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate

from ledger_service.domain import accounts
from ledger_service.domain.errors import InsufficientFunds, InvalidArgument
from ledger_service.domain.grants import Grant, drain, grant_parts, part_key
from ledger_service.domain.money import ZERO


class CreditKind(StrEnum):
    TOPUP = "topup"
    GRANT = "grant"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    TRANSFER = "transfer"
    MIGRATION = "migration"
    """A legacy per-sender pool's buckets moved into the company's shared pool."""


class CreditBucket(StrEnum):
    INCLUDED = "included"
    PREPAID = "prepaid"
    POSTPAID_USED = "postpaid_used"
    """Repays drawn postpaid credit only (an operator's correction of a debt)."""
    DRAWN = "drawn"
    """Back to the buckets a debit drew from (a usage refund); see ``split_refund``."""
    GRANTS = "grants"
    """Into one credit grant (``domain.grants``), as it is issued."""


class DebitKind(StrEnum):
    USAGE = "usage"
    TRANSFER = "transfer"
    EXPIRY = "expiry"
    """Unused included quota expiring at a cycle boundary, or a grant's remainder expiring
    or voided."""
    ADJUSTMENT = "adjustment"
    """An operator's correction (see ``domain.adjustment``)."""
    MIGRATION = "migration"
    """A legacy per-sender pool's buckets moved out, into the company's shared pool."""


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
        # caps, the burn window and today's transfers need the event's own time, and must
        # follow from the event on replay exactly as they did live.
        if self.kind == DebitKind.USAGE and self.category is not None:
            aggregate._track_spending(self.timestamp, self.category, self.units, self.amount)
        elif self.kind == DebitKind.TRANSFER:
            aggregate._track_transfer(self.timestamp, self.amount)


@dataclass(frozen=True, slots=True)
class DebitSplit:
    """How one debit was drawn from the buckets, in drain order. ``grants``: what it took from
    each credit grant (split keys ``grant:<id>``, drawn between included and prepaid)."""

    included: Decimal
    prepaid: Decimal
    postpaid: Decimal
    overage: Decimal
    grants: Mapping[str, Decimal] | None = None

    def as_dict(self) -> dict[str, Decimal]:
        parts = {
            "included": self.included,
            "prepaid": self.prepaid,
            "postpaid": self.postpaid,
            "overage": self.overage,
        }
        if self.grants:
            parts.update(self.grants)
        return parts


def split_credit(
    amount: Decimal,
    bucket: CreditBucket,
    *,
    postpaid_used: Decimal,
    drawn: dict[str, Decimal] | None = None,
    grant_id: str | None = None,
) -> dict[str, Decimal]:
    """Where a credit goes. Prepaid money first repays drawn postpaid credit, so a wallet never
    holds prepaid money and debt at the same time. ``drawn``: the split of the debit that a
    ``DRAWN`` credit gives back; ``grant_id``: the grant a ``GRANTS`` credit fills (grants
    repay no debt: they are drained by usage, or expire)."""
    if bucket is CreditBucket.GRANTS:
        if grant_id is None:
            raise InvalidArgument("a credit to a grant needs the grant's id")
        return {part_key(grant_id): amount}
    if bucket is CreditBucket.DRAWN:
        if drawn is None:
            raise InvalidArgument("a credit back to the drawn buckets needs the debit's split")
        return split_refund(drawn, postpaid_used=postpaid_used)
    if bucket is CreditBucket.PREPAID:
        repaid = min(amount, postpaid_used)
        return {"postpaid": repaid, "prepaid": amount - repaid}
    if bucket is CreditBucket.POSTPAID_USED:
        if amount > postpaid_used:
            raise InsufficientFunds(
                f"a credit of {amount} exceeds the drawn postpaid credit {postpaid_used}"
            )
        return {"postpaid": amount}
    return {"included": amount}


def split_refund(drawn: dict[str, Decimal], *, postpaid_used: Decimal) -> dict[str, Decimal]:
    """A debit's split given back in reverse drain order. What was drawn on credit or as
    overage, then what was prepaid, repays the wallet's debt as it stands now (it may have been
    repaid since, or grown); the rest is prepaid money again. The included part is included
    quota again (and expires with the cycle like all quota), each grant part goes back to its
    grant (if that grant has closed since, it expires again at once: see ``wallet_grants``)."""
    paid = drawn["postpaid"] + drawn["overage"] + drawn["prepaid"]
    split = split_credit(paid, CreditBucket.PREPAID, postpaid_used=postpaid_used)
    return {"included": drawn["included"], **drawn_grants(drawn), **split}


def drawn_grants(split: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """The grant parts of a split, under their split keys."""
    return {part_key(g): amount for g, amount in grant_parts(split)}


def split_debit(
    amount: Decimal,
    *,
    included: Decimal,
    prepaid: Decimal,
    postpaid_used: Decimal,
    postpaid_limit: Decimal,
    grants: Collection[Grant] = (),
) -> DebitSplit:
    """Drain ``amount`` in bucket order (included, ``grants`` in their drain order, prepaid,
    postpaid credit); what no bucket covers is overage."""
    from_included = min(amount, max(included, ZERO))
    rest = amount - from_included
    from_grants = None
    if grants and rest > 0:
        from_grants = drain(rest, grants)
        rest -= sum(from_grants.values(), ZERO)
    from_prepaid = min(rest, max(prepaid, ZERO))
    rest -= from_prepaid
    from_postpaid = min(rest, max(postpaid_limit - postpaid_used, ZERO))
    return DebitSplit(from_included, from_prepaid, from_postpaid, rest - from_postpaid, from_grants)


def check_counter_account(name: str) -> None:
    if name not in accounts.COUNTER_ACCOUNTS:
        raise InvalidArgument(
            f"unknown counter account {name!r}; one of {sorted(accounts.COUNTER_ACCOUNTS)}"
        )


def check_entry(
    amount: Decimal,
    split: dict[str, Decimal],
    *,
    sign: int,
    included: Decimal,
    prepaid: Decimal,
    postpaid_used: Decimal,
    grants: Mapping[str, Grant],
) -> None:
    """Invariants of every money event, checked before it is triggered (so a broken one never
    reaches the aggregate or the store): the split adds up to the amount, no part of it is
    negative, and no bucket goes negative. ``included``/``prepaid``/``postpaid_used``/``grants``
    are the wallet's before the entry. A failure here is a bug, not input.
    (Plain comparisons: this runs for every message billed.)"""
    from_included = split.get("included", ZERO)
    from_prepaid = split.get("prepaid", ZERO)
    postpaid = split.get("postpaid", ZERO)
    overage = split.get("overage", ZERO)
    total = from_included + from_prepaid + postpaid + overage
    negative = from_included < 0 or from_prepaid < 0 or postpaid < 0 or overage < 0
    if sign < 0:  # a debit drains included and prepaid; postpaid_used only grows
        fits = included >= from_included and prepaid >= from_prepaid
    else:  # a credit fills included and prepaid, repaying postpaid_used first
        fits = postpaid_used >= postpaid
    if grants or len(split) > 4:  # only wallets with grants pay for this loop
        for grant, part in grant_parts(split):
            total += part
            negative = negative or part < 0
            known = grants.get(grant)
            fits = fits and known is not None and (sign > 0 or known.remaining >= part)
    assert total == amount, f"split {split} does not add up to {amount}"
    assert not negative, f"negative part in split {split}"
    assert fits, f"{split} would leave a bucket below zero"
