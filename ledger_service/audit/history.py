"""`ledger history`: a wallet's state as it was at a position or a time, from its events."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from ledger_service.domain.errors import InvalidArgument, WalletNotFound
from ledger_service.domain.ids import wallet_id
from ledger_service.domain.money import format_amount
from ledger_service.domain.wallet import Wallet
from ledger_service.service.ledger import LedgerApplication


@dataclass(frozen=True)
class WalletAsOf:
    company_id: str
    version: int
    position: int
    wallet: Wallet

    def as_dict(self) -> dict[str, Any]:
        w = self.wallet
        return {
            "company_id": self.company_id,
            "as_of_position": self.position,
            "as_of_version": self.version,
            "currency": w.currency,
            "mode": w.mode.value,
            "balance": format_amount(w.balance),
            "available": format_amount(w.available),
            "buckets": {
                "included": format_amount(w.included),
                "grants": format_amount(w.granted),
                "prepaid": format_amount(w.prepaid),
                "postpaid_used": format_amount(w.postpaid_used),
            },
            "overage_total": format_amount(w.overage_total),
            "held": format_amount(w.held),
            "postpaid_limit": format_amount(w.postpaid_limit),
            "included_quota": format_amount(w.included_quota),
            "rate_card": {k: format_amount(v) for k, v in sorted(w.rate_card.items())},
            "senders": sorted(w.senders),
            "grants": {
                g.grant_id: {"status": g.status.value, "remaining": format_amount(g.remaining)}
                for g in w.grants.values()
            },
            "entry_hash": w.entry_hash,
        }


def wallet_as_of(
    ledger: LedgerApplication,
    company_id: str,
    *,
    position: int | None = None,
    at: datetime | None = None,
    pool_sender_id: str | None = None,
) -> WalletAsOf:
    """Exactly one of ``position`` (global event position, inclusive) or ``at`` (time)."""
    if (position is None) == (at is None):
        raise InvalidArgument("give exactly one of position or at")
    ident = wallet_id(company_id, pool_sender_id)
    positions = ledger.command_store.select_positions(ident)
    if not positions:
        raise WalletNotFound(f"no wallet for company {company_id}")
    if position is not None:
        index = bisect.bisect_right([p for _, p in positions], position)
    else:
        assert at is not None
        times = [cast(Any, e).timestamp for e in ledger.events.get(ident)]
        index = bisect.bisect_right(times, at)
    if index == 0:
        raise WalletNotFound(f"the wallet of {company_id} did not exist yet then")
    version, at_position = positions[index - 1]
    wallet = cast(Wallet, ledger.repository.get(ident, version=version))
    return WalletAsOf(company_id, version, at_position, wallet)
