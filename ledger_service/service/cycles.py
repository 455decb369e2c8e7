"""Time-driven changes of wallets: billing-cycle boundaries (expire the unused included quota,
grant the next one), and credit grants and holds reaching their ``expires_at``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

import structlog

from ledger_service.domain.errors import ConcurrencyConflict
from ledger_service.service.runner import evicting_on_conflict, retry_on_conflict

if TYPE_CHECKING:
    from ledger_service.service.ledger import LedgerApplication

log = structlog.get_logger(__name__)


def start_due_cycles(
    ledger: LedgerApplication, wallet_ids: Iterable[UUID], *, now: datetime, actor: str
) -> int:
    """Expire the due grants and holds and start the due billing cycles of ``wallet_ids``;
    how many grants and holds expired and cycles started, together.

    Each wallet is saved on its own: a crash part-way leaves the rest for the next run. A
    concurrent run (or a usage batch) makes the save fail on the wallet's version; the loser
    re-reads and finds nothing left to do, so a boundary is started exactly once. A wallet
    that keeps losing is left for the next run.
    """
    started = 0
    for id_ in wallet_ids:
        try:
            started += _start_wallet_cycles(ledger, id_, now=now, actor=actor)
        except ConcurrencyConflict:
            log.warning("cycle_start_deferred", wallet_id=str(id_), reason="concurrent writes")
    return started


def _start_wallet_cycles(
    ledger: LedgerApplication, wallet_id: UUID, *, now: datetime, actor: str
) -> int:
    def attempt() -> int:
        wallet = ledger.get_wallet_by_id(wallet_id)
        count = wallet.expire_due_grants(now, actor=actor)
        count += wallet.expire_due_holds(now, actor=actor)
        count += wallet.start_due_cycles(now, actor=actor)
        if count:
            with evicting_on_conflict(ledger, [wallet]):
                ledger.save(wallet)
        return count

    return retry_on_conflict(attempt, ledger.retry_count_max, what="start_due_cycles")
