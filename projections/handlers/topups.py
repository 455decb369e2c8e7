"""Top-up request events: the request's row through its lifecycle.

``Approved`` leaves the status alone: approval issues the invoice, and the ``Invoiced`` event
that always follows it in the same save moves the request to ``invoiced``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger_service.domain.topup import TopupRequest, TopupStatus
from projections.handlers import HandlerTable
from projections.rows import TopupRow

if TYPE_CHECKING:
    from projections.builder import BatchBuilder

TOPUPS = HandlerTable()


@TOPUPS.on(TopupRequest.Requested)
def requested(b: BatchBuilder, position: int, event: TopupRequest.Requested) -> None:
    b.topups[event.originator_id] = TopupRow(
        topup_id=event.originator_id,
        company_id=event.company_id,
        wallet_id=event.wallet_id,
        amount=event.amount,
        currency=event.currency,
        note=event.note,
        status=TopupStatus.PENDING.value,
        requested_by=event.actor,
        requested_at=event.timestamp,
        updated_at=event.timestamp,
        created_position=position,
        position=position,
    )
    b.touched_topups.add(event.originator_id)


@TOPUPS.on(TopupRequest.PackChosen)
def pack_chosen(b: BatchBuilder, position: int, event: TopupRequest.PackChosen) -> None:
    row = b.touch_topup(position, event)
    row.pack, row.bonus = event.pack, event.bonus


@TOPUPS.on(TopupRequest.Approved)
def approved(b: BatchBuilder, position: int, event: TopupRequest.Approved) -> None:
    row = b.touch_topup(position, event)
    row.approved_by, row.approved_at = event.actor, event.timestamp


@TOPUPS.on(TopupRequest.Invoiced)
def invoiced(b: BatchBuilder, position: int, event: TopupRequest.Invoiced) -> None:
    row = b.touch_topup(position, event)
    row.status, row.invoice_number = TopupStatus.INVOICED.value, event.invoice_number
    row.invoiced_at = event.timestamp


@TOPUPS.on(TopupRequest.Priced)
def priced(b: BatchBuilder, position: int, event: TopupRequest.Priced) -> None:
    row = b.touch_topup(position, event)
    row.tax, row.fee = event.tax, event.fee


@TOPUPS.on(TopupRequest.Rejected)
def rejected(b: BatchBuilder, position: int, event: TopupRequest.Rejected) -> None:
    row = b.touch_topup(position, event)
    row.status, row.reason = TopupStatus.REJECTED.value, event.reason
    row.rejected_by, row.rejected_at = event.actor, event.timestamp


@TOPUPS.on(TopupRequest.Cancelled)
def cancelled(b: BatchBuilder, position: int, event: TopupRequest.Cancelled) -> None:
    row = b.touch_topup(position, event)
    row.status, row.reason = TopupStatus.CANCELLED.value, event.reason
    row.cancelled_by, row.cancelled_at = event.actor, event.timestamp


@TOPUPS.on(TopupRequest.Paid)
def paid(b: BatchBuilder, position: int, event: TopupRequest.Paid) -> None:
    row = b.touch_topup(position, event)
    row.payment_reference = event.payment_reference
    row.paid_by, row.paid_at = event.actor, event.timestamp


@TOPUPS.on(TopupRequest.ChargesCollected)
def charges_collected(b: BatchBuilder, position: int, event: TopupRequest.ChargesCollected) -> None:
    b.touch_topup(position, event)  # the money is booked by its postings (rm_account_totals)


@TOPUPS.on(TopupRequest.Completed)
def completed(b: BatchBuilder, position: int, event: TopupRequest.Completed) -> None:
    row = b.touch_topup(position, event)
    row.status, row.completed_at = TopupStatus.COMPLETED.value, event.timestamp


@TOPUPS.on(TopupRequest.Flagged)
def flagged(b: BatchBuilder, position: int, event: TopupRequest.Flagged) -> None:
    row = b.touch_topup(position, event)
    row.status, row.review_rules = TopupStatus.NEEDS_REVIEW.value, list(event.rules)


@TOPUPS.on(TopupRequest.Released)
def released(b: BatchBuilder, position: int, event: TopupRequest.Released) -> None:
    row = b.touch_topup(position, event)
    row.status = TopupStatus.PENDING.value
    row.released_by, row.released_at = event.actor, event.timestamp


@TOPUPS.on(TopupRequest.CreditsQuoted)
def credits_quoted(b: BatchBuilder, position: int, event: TopupRequest.CreditsQuoted) -> None:
    row = b.touch_topup(position, event)
    row.credit_unit, row.credit_rate, row.credits = event.unit, event.rate, event.credits
