"""Creates the top-up request of every ``AutoTopupTriggered`` event, exactly once.

The request's idempotency keys derive from the triggering event (wallet id and version), so
handling an event twice - after a crash before the position was saved - returns the first
request instead of creating another.
"""

from __future__ import annotations

import asyncio

import structlog
from eventsourcing.utils import get_topic

from ledger_service.domain.errors import LedgerError
from ledger_service.domain.wallet import Wallet
from ledger_service.follow import FollowLoop
from ledger_service.reactions.follower import LogFollower
from ledger_service.service.ledger import LedgerApplication

log = structlog.get_logger(__name__)

REACTOR_NAME = "auto_topup"
TOPICS = (f"{get_topic(Wallet)}.AutoTopupTriggered",)


class AutoTopupReactor:
    def __init__(
        self, ledger: LedgerApplication, follower: LogFollower, loop: FollowLoop | None = None
    ) -> None:
        self.ledger = ledger
        self.follower = follower
        self.loop = loop or FollowLoop(REACTOR_NAME)

    def react_once(self) -> int:
        """Handle the next batch; how many log positions it covered (0: nothing new)."""
        batch = self.follower.next_batch()
        if batch is None:
            return 0
        for _, event in batch.events:
            try:
                result = self.ledger.request_auto_topup(
                    wallet_id=event.originator_id,
                    trigger_version=event.originator_version,
                    auto_approve=event.auto_approve,
                    amount=event.amount,
                )
            except LedgerError as exc:
                # A refused request (e.g. the wallet's currency changed meanwhile) must not stop
                # the others; it is logged for an operator with the triggering event.
                log.error(
                    "auto_topup_refused",
                    company_id=event.company_id,
                    wallet_id=str(event.originator_id),
                    version=event.originator_version,
                    code=exc.code,
                    error=exc.message,
                )
                continue
            log.info(
                "auto_topup_requested",
                company_id=event.company_id,
                topup_id=result["topup_id"],
                status=result.get("status"),
            )
        self.follower.done(batch)
        return len(batch.events) or 1

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the log until ``stop``; an unreachable database is waited out, a bug raises."""
        await self.loop.run(self._step, stop)

    async def _step(self) -> bool:
        return bool(await asyncio.to_thread(self.react_once))
