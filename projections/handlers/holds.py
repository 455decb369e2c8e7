"""Holds on the wallet row (``held``) and in ``rm_holds`` (the active ones): a placed hold is
inserted, a closed one deleted; one placed and closed within a batch is never written."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from ledger_service.domain import wallet_events
from ledger_service.domain.wallet import Wallet
from projections.handlers import HandlerTable
from projections.rows import HoldRow

if TYPE_CHECKING:
    from projections.builder import BatchBuilder

HOLDS = HandlerTable()


@HOLDS.on(Wallet.HoldPlaced)
def hold_placed(b: BatchBuilder, position: int, event: wallet_events.HoldPlaced) -> None:
    row = b.touch_wallet(position, event)
    row.held += event.amount
    hold_id = UUID(event.hold_id)
    b.holds_placed[hold_id] = HoldRow(
        hold_id, row.wallet_id, row.company_id, event.reference, event.source, event.sender_id,
        event.category, event.units, event.amount, event.expires_at, event.timestamp,
        event.actor, position,
    )  # fmt: skip


@HOLDS.on(Wallet.HoldClosed)
def hold_closed(b: BatchBuilder, position: int, event: wallet_events.HoldClosed) -> None:
    row = b.touch_wallet(position, event)
    row.held -= event.amount
    hold_id = UUID(event.hold_id)
    if b.holds_placed.pop(hold_id, None) is None:
        b.holds_closed.add(hold_id)
