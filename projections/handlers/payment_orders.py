"""Payment order events: the order's row (``rm_payment_orders``).

An order created in the batch is a row the builder changes in place; a later event of an
order created before is a ``PaymentOrderChange``, written as an UPDATE (no row is loaded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ledger_service.domain.payment_order import PaymentOrder, PaymentOrderStatus
from projections.handlers import HandlerTable
from projections.rows import PaymentOrderChange, PaymentOrderRow

if TYPE_CHECKING:
    from projections.builder import BatchBuilder

PAYMENT_ORDERS = HandlerTable()


@PAYMENT_ORDERS.on(PaymentOrder.Created)
def created(b: BatchBuilder, position: int, event: PaymentOrder.Created) -> None:
    b.payment_orders[event.originator_id] = PaymentOrderRow(
        payment_order_id=event.originator_id,
        topup_id=event.topup_id,
        company_id=event.company_id,
        provider=event.provider,
        status=PaymentOrderStatus.CREATED.value,
        amount_total=event.amount_total,
        currency=event.currency,
        created_at=event.timestamp,
        updated_at=event.timestamp,
        position=position,
    )


def _change(b: BatchBuilder, position: int, event: Any, **columns: str | None) -> None:
    row = b.payment_orders.get(event.originator_id)
    if row is not None:
        for name, value in columns.items():
            if value is not None:
                setattr(row, name, value)
        row.updated_at, row.position = event.timestamp, position
        return
    earlier = b.payment_order_changes.get(event.originator_id)
    merged = {
        name: value if value is not None else getattr(earlier, name, None)
        for name, value in {"status": None, "checkout_url": None, "failure_reason": None,
                            **columns}.items()
    }  # fmt: skip
    b.payment_order_changes[event.originator_id] = PaymentOrderChange(
        event.originator_id, updated_at=event.timestamp, position=position, **merged
    )


@PAYMENT_ORDERS.on(PaymentOrder.CheckoutOpened)
def checkout_opened(b: BatchBuilder, position: int, event: PaymentOrder.CheckoutOpened) -> None:
    _change(b, position, event, checkout_url=event.checkout_url)


@PAYMENT_ORDERS.on(PaymentOrder.Succeeded)
def succeeded(b: BatchBuilder, position: int, event: PaymentOrder.Succeeded) -> None:
    _change(b, position, event, status=PaymentOrderStatus.SUCCEEDED.value)


@PAYMENT_ORDERS.on(PaymentOrder.Failed)
def failed(b: BatchBuilder, position: int, event: PaymentOrder.Failed) -> None:
    _change(b, position, event, status=PaymentOrderStatus.FAILED.value,
            failure_reason=event.reason)  # fmt: skip


@PAYMENT_ORDERS.on(PaymentOrder.Expired)
def expired(b: BatchBuilder, position: int, event: PaymentOrder.Expired) -> None:
    _change(b, position, event, status=PaymentOrderStatus.EXPIRED.value)


@PAYMENT_ORDERS.on(PaymentOrder.FlaggedForReview)
def flagged(b: BatchBuilder, position: int, event: PaymentOrder.FlaggedForReview) -> None:
    _change(b, position, event, status=PaymentOrderStatus.NEEDS_REVIEW.value,
            failure_reason=event.reason)  # fmt: skip
