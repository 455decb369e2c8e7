"""The Adjustment aggregate: an operator's manual correction of a wallet, under the four-eyes rule.

Lifecycle::

    (amount <= threshold)  requested --------------------------------> applied
    (amount >  threshold)  requested -> pending_approval --approve--> applied
                                                          --reject---> rejected

The threshold is the service's setting (``LEDGER_ADJUSTMENT_APPROVAL_THRESHOLD``, default 0:
every adjustment needs a second operator). Approving and rejecting are for an operator other than
the requester. The money moves only when the adjustment is ``applied``: the wallet's ``Credited``
or ``Debited`` entry (kind ``adjustment``, counter account ``adjustments``) is saved in the same
transaction as the ``Applied`` event, so an adjustment moves money exactly once. Requester,
approver and reason live in these events, which the audit export carries.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger_service.domain import accounts
from ledger_service.domain.entries import CreditBucket, CreditKind, DebitKind, DebitSplit
from ledger_service.domain.errors import (
    InsufficientFunds,
    InvalidArgument,
    InvalidTransition,
    NotPermitted,
)
from ledger_service.domain.ids import check_key
from ledger_service.domain.money import ZERO, parse_amount
from ledger_service.domain.topup import REASON_LENGTH_MAX, check_text
from ledger_service.domain.wallet import Wallet

ADJUSTMENT_PREFIX = "adjustment:"
"""The wallet entry of an adjustment has the reference ``adjustment:<adjustment id>``."""


class AdjustmentStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPLIED = "applied"
    REJECTED = "rejected"


class Direction(StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"


class AdjustedBucket(StrEnum):
    PREPAID = "prepaid"
    POSTPAID_USED = "postpaid_used"


class Adjustment(Aggregate):
    # Fields in the order of the decorated methods' parameters (the stored payload's order).
    class Requested(Aggregate.Created):
        company_id: str
        wallet_id: UUID
        direction: str
        amount: Decimal
        bucket: str
        reason: str
        needs_approval: bool
        actor: str

    class Approved(Aggregate.Event):
        actor: str

    class Rejected(Aggregate.Event):
        reason: str
        actor: str

    class Applied(Aggregate.Event):
        actor: str

    @classmethod
    def request(
        cls,
        *,
        company_id: str,
        wallet_id: UUID,
        direction: Direction,
        amount: Decimal,
        bucket: AdjustedBucket,
        reason: str,
        approval_threshold: Decimal,
        actor: str,
    ) -> Adjustment:
        """A new adjustment; above ``approval_threshold`` it waits for a second operator,
        otherwise the caller applies it (``apply``) in the same save."""
        check_key(company_id, "company_id")
        amount = parse_amount(amount, allow_zero=False)
        return cls(
            company_id=company_id,
            wallet_id=wallet_id,
            direction=direction.value,
            amount=amount,
            bucket=bucket.value,
            reason=check_text(reason, "reason", REASON_LENGTH_MAX, required=True),
            needs_approval=amount > approval_threshold,
            actor=actor,
        )

    @event(Requested)
    def __init__(
        self,
        company_id: str,
        wallet_id: UUID,
        direction: str,
        amount: Decimal,
        bucket: str,
        reason: str,
        needs_approval: bool,
        actor: str,
    ) -> None:
        self.company_id = company_id
        self.wallet_id = wallet_id
        self.direction = Direction(direction)
        self.amount = amount
        self.bucket = AdjustedBucket(bucket)
        self.reason = reason
        self.needs_approval = needs_approval
        self.requested_by = actor
        self.approved_by: str | None = None
        self.rejected_by: str | None = None
        self.rejection_reason = ""
        self.status = AdjustmentStatus.PENDING_APPROVAL

    def _check_pending(self, action: str) -> None:
        if self.status is not AdjustmentStatus.PENDING_APPROVAL:
            raise InvalidTransition(f"cannot {action} an adjustment that is {self.status.value}")

    def _check_second_operator(self, action: str, actor: str) -> None:
        if actor == self.requested_by:
            raise NotPermitted(
                f"{actor} requested this adjustment: another operator must {action} it"
            )

    def apply_now(self, *, actor: str) -> None:
        """Apply an adjustment at or below the threshold; the caller moves the money."""
        self._check_pending("apply")
        if self.needs_approval:
            raise NotPermitted("this adjustment is above the approval threshold: approve it")
        self._applied(actor=actor)

    def approve(self, *, actor: str) -> None:
        """Approve and apply; the caller moves the money in the same save."""
        self._check_pending("approve")
        self._check_second_operator("approve", actor)
        self._approved(actor=actor)
        self._applied(actor=actor)

    def reject(self, *, reason: str, actor: str) -> None:
        self._check_pending("reject")
        self._check_second_operator("reject", actor)
        self._rejected(
            reason=check_text(reason, "reason", REASON_LENGTH_MAX, required=True), actor=actor
        )

    @event(Approved)
    def _approved(self, actor: str) -> None:
        self.approved_by = actor

    @event(Applied)
    def _applied(self, actor: str) -> None:
        self.status = AdjustmentStatus.APPLIED

    @event(Rejected)
    def _rejected(self, reason: str, actor: str) -> None:
        self.status = AdjustmentStatus.REJECTED
        self.rejected_by = actor
        self.rejection_reason = reason

    @property
    def reference(self) -> str:
        """The wallet entry's reference."""
        return f"{ADJUSTMENT_PREFIX}{self.id}"


def check_adjustment(
    wallet: Wallet, *, direction: Direction, bucket: AdjustedBucket, amount: Decimal
) -> DebitSplit | None:
    """Refuse an adjustment that would break a bucket, as the wallet stands now (at request
    and again at approval); a debit's split. A credit of ``prepaid`` repays drawn postpaid
    credit first (as every prepaid credit does); a credit of ``postpaid_used`` repays debt only.
    A debit never takes a bucket below zero nor draws beyond the postpaid limit, and debt is
    only recorded on a wallet without prepaid money."""
    if direction is Direction.CREDIT:
        if bucket is AdjustedBucket.POSTPAID_USED and amount > wallet.postpaid_used:
            raise InsufficientFunds(
                f"a credit of {amount} exceeds the drawn postpaid credit {wallet.postpaid_used}"
            )
        return None
    if bucket is AdjustedBucket.PREPAID:
        if amount > wallet.prepaid:
            raise InsufficientFunds(
                f"a debit of {amount} exceeds the prepaid balance {wallet.prepaid}"
            )
        return DebitSplit(ZERO, amount, ZERO, ZERO)
    if wallet.prepaid > 0:
        raise InvalidArgument("the wallet holds prepaid money: debit prepaid instead")
    credit_left = wallet.postpaid_limit - wallet.postpaid_used
    if amount > credit_left:
        raise InsufficientFunds(f"a debit of {amount} exceeds the postpaid credit {credit_left}")
    return DebitSplit(ZERO, ZERO, amount, ZERO)


def adjust_wallet(
    wallet: Wallet,
    *,
    direction: Direction,
    bucket: AdjustedBucket,
    amount: Decimal,
    reference: str,
    actor: str,
) -> None:
    """Post an applied adjustment to its wallet, against the ``adjustments`` account; refused
    (nothing moves) when ``check_adjustment`` refuses it."""
    split = check_adjustment(wallet, direction=direction, bucket=bucket, amount=amount)
    if split is None:
        wallet.credit(
            amount,
            bucket=CreditBucket(bucket.value),
            kind=CreditKind.ADJUSTMENT,
            counter_account=accounts.ADJUSTMENTS,
            reference=reference,
            actor=actor,
        )
        return
    wallet._debit_entry(
        amount,
        split,
        kind=DebitKind.ADJUSTMENT,
        counter_account=accounts.ADJUSTMENTS,
        reference=reference,
        actor=actor,
    )
    wallet._evaluate_triggers()
