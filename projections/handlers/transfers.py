"""Transfer events: one row per transfer (``rm_transfers``), for the operators' list and its
totals. The wallets' sides are ledger entries (``handlers.wallets``); the commission is an
account posting (the builder's account totals)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger_service.domain.transfer import Transfer
from projections.handlers import HandlerTable
from projections.rows import TransferRow

if TYPE_CHECKING:
    from projections.builder import BatchBuilder

TRANSFERS = HandlerTable()


@TRANSFERS.on(Transfer.Completed)
def completed(b: BatchBuilder, position: int, event: Transfer.Completed) -> None:
    b.transfers.append(
        TransferRow(
            position=position,
            transfer_id=event.originator_id,
            from_company_id=event.from_company_id,
            to_company_id=event.to_company_id,
            currency=event.currency,
            amount=event.amount,
            commission=event.commission,
            net_amount=event.net_amount,
            note=event.note,
            actor=event.actor,
            occurred_at=event.timestamp,
            gift_type=event.gift_type,
            message=event.message,
        )
    )
