"""Credit grants on the wallet row: the total left (``granted``), the active grants with their
remainders (``grants``, JSON by id) and the soonest expiry (``next_grant_expiry_at``).

A batch parses a wallet's grants JSON once, when one of its events first touches them
(``BatchBuilder.wallet_grants``), and writes it back once (``BatchBuilder.flush_grants``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ledger_service.domain import wallet_events
from ledger_service.domain.grants import grant_parts
from ledger_service.domain.money import format_amount
from ledger_service.domain.wallet import Wallet
from projections.handlers import HandlerTable
from projections.rows import WalletRow

if TYPE_CHECKING:
    from projections.builder import BatchBuilder

GRANTS = HandlerTable()


@GRANTS.on(Wallet.GrantIssued)
def grant_issued(b: BatchBuilder, position: int, event: wallet_events.GrantIssued) -> None:
    row = b.touch_wallet(position, event)
    grants = b.wallet_grants(row)
    grants[event.grant_id] = {
        "grant_id": event.grant_id,
        "amount": format_amount(event.amount),
        "remaining": "0",  # the Credited entry that follows brings the money
        "priority": event.priority,
        "expires_at": None if event.expires_at is None else event.expires_at.isoformat(),
        "granted_at": event.timestamp.isoformat(),
        "reason": event.reason,
        "reference": event.reference,
        "granted_by": event.actor,
    }
    row.next_grant_expiry_at = _soonest_expiry(grants)


@GRANTS.on(Wallet.GrantClosed)
def grant_closed(b: BatchBuilder, position: int, event: wallet_events.GrantClosed) -> None:
    row = b.touch_wallet(position, event)
    grants = b.wallet_grants(row)
    grants.pop(event.grant_id, None)
    row.next_grant_expiry_at = _soonest_expiry(grants)


def apply_grant_parts(
    b: BatchBuilder, row: WalletRow, split: dict[str, Decimal], sign: int
) -> Decimal:
    """A money entry's grant parts onto the row's grants; their sum. A part of a grant that is
    no longer active (a refund to a closed grant, taken again at once) moves ``granted`` only."""
    total = Decimal(0)
    grants: dict[str, dict[str, Any]] | None = None
    for grant_id, part in grant_parts(split):
        grants = grants if grants is not None else b.wallet_grants(row)
        total += part
        grant = grants.get(grant_id)
        if grant is not None:
            grant["remaining"] = format_amount(Decimal(grant["remaining"]) + sign * part)
    row.granted += sign * total
    return total


def _soonest_expiry(grants: dict[str, dict[str, Any]]) -> datetime | None:
    expiries = [datetime.fromisoformat(g["expires_at"]) for g in grants.values() if g["expires_at"]]
    return min(expiries, default=None)
