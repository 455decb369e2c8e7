"""Operator adjustments under the four-eyes rule: request (applied at once up to the threshold),
approve (a second operator; the money moves in the same save) or reject."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar, Literal, NotRequired, TypedDict
from uuid import UUID

from ledger_service.domain.adjustment import (
    AdjustedBucket,
    Adjustment,
    Direction,
    adjust_wallet,
    check_adjustment,
)
from ledger_service.domain.errors import AdjustmentNotFound
from ledger_service.domain.money import format_amount, parse_amount
from ledger_service.service.runner import Command, Decision
from ledger_service.service.values import parse_enum, set_field

if TYPE_CHECKING:
    from ledger_service.service.ledger import LedgerApplication


AdjustmentStatusText = Literal["pending_approval", "applied", "rejected"]
DirectionText = Literal["credit", "debit"]
BucketText = Literal["prepaid", "postpaid_used"]


class AdjustmentState(TypedDict):
    adjustment_id: str
    company_id: str
    status: AdjustmentStatusText
    direction: DirectionText
    bucket: BucketText
    amount: str
    reason: str
    requested_by: str
    approved_by: str | None
    rejected_by: str | None
    rejection_reason: str
    position: NotRequired[int | None]


def adjustment_state(adjustment: Adjustment) -> AdjustmentState:
    return {
        "adjustment_id": str(adjustment.id),
        "company_id": adjustment.company_id,
        "status": adjustment.status.value,
        "direction": adjustment.direction.value,
        "bucket": adjustment.bucket.value,
        "amount": format_amount(adjustment.amount),
        "reason": adjustment.reason,
        "requested_by": adjustment.requested_by,
        "approved_by": adjustment.approved_by,
        "rejected_by": adjustment.rejected_by,
        "rejection_reason": adjustment.rejection_reason,
    }


def _applied(ledger: LedgerApplication, adjustment: Adjustment) -> Decision[AdjustmentState]:
    """Post an applied adjustment to its wallet: both saved together, so money moves once."""
    wallet = ledger.get_wallet_by_id(adjustment.wallet_id)
    adjust_wallet(
        wallet,
        direction=adjustment.direction,
        bucket=adjustment.bucket,
        amount=adjustment.amount,
        reference=adjustment.reference,
        actor=adjustment.approved_by or adjustment.requested_by,
    )
    return Decision([adjustment, wallet], adjustment_state(adjustment))


@dataclass(frozen=True, kw_only=True)
class RequestAdjustment(Command[AdjustmentState]):
    """A correction of a wallet by an operator; above the threshold it waits for a second one."""

    name: ClassVar[str] = "request_adjustment"
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"company_id"})

    company_id: str
    direction: Direction
    amount: Decimal
    bucket: AdjustedBucket
    reason: str
    pool_sender_id: str | None = None

    def __post_init__(self) -> None:
        set_field(self, "direction", parse_enum(Direction, self.direction, "direction"))
        set_field(self, "bucket", parse_enum(AdjustedBucket, self.bucket, "bucket"))
        set_field(self, "amount", parse_amount(self.amount, allow_zero=False))

    def scope(self, ledger: LedgerApplication) -> str:
        return self.company_id

    def decide(self, ledger: LedgerApplication) -> Decision[AdjustmentState]:
        wallet = ledger.get_wallet(self.company_id, self.pool_sender_id)
        adjustment = Adjustment.request(
            company_id=self.company_id,
            wallet_id=wallet.id,
            direction=self.direction,
            amount=self.amount,
            bucket=self.bucket,
            reason=self.reason,
            approval_threshold=ledger.adjustment_approval_threshold,
            actor=self.actor,
        )
        if adjustment.needs_approval:
            # Refused now if it could not apply now; approval checks again (money moves then).
            check_adjustment(
                wallet, direction=self.direction, bucket=self.bucket, amount=self.amount
            )
            return Decision([adjustment], adjustment_state(adjustment))
        adjustment.apply_now(actor=self.actor)
        return _applied(ledger, adjustment)


@dataclass(frozen=True, kw_only=True)
class AdjustmentCommand(Command[AdjustmentState]):
    """A decision on a pending adjustment: scoped by its company."""

    company_id: str
    adjustment_id: UUID

    def scope(self, ledger: LedgerApplication) -> str:
        return self.company_id

    def load(self, ledger: LedgerApplication) -> Adjustment:
        """The adjustment, provided it is this company's (another's looks like none)."""
        adjustment = ledger.get_adjustment(self.adjustment_id)
        if adjustment.company_id != self.company_id:
            raise AdjustmentNotFound(f"no adjustment {self.adjustment_id} of {self.company_id}")
        return adjustment


@dataclass(frozen=True, kw_only=True)
class ApproveAdjustment(AdjustmentCommand):
    """A second operator approves; the adjustment is applied in the same save."""

    name: ClassVar[str] = "approve_adjustment"

    def decide(self, ledger: LedgerApplication) -> Decision[AdjustmentState]:
        adjustment = self.load(ledger)
        adjustment.approve(actor=self.actor)
        return _applied(ledger, adjustment)


@dataclass(frozen=True, kw_only=True)
class RejectAdjustment(AdjustmentCommand):
    name: ClassVar[str] = "reject_adjustment"

    reason: str

    def decide(self, ledger: LedgerApplication) -> Decision[AdjustmentState]:
        adjustment = self.load(ledger)
        adjustment.reject(reason=self.reason, actor=self.actor)
        return Decision([adjustment], adjustment_state(adjustment))
