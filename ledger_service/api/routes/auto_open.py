"""Wallets on first use (``LEDGER_AUTO_OPEN_WALLETS``): a tenant's first balance read or
top-up request for its own company opens the company's wallet with the service's defaults.

Off by default, and then an unknown company stays 404. Opening goes through ``OpenWallet``
under one idempotency key per company, so twenty concurrent first requests open it once: the
others replay the first one's answer (or find the wallet an operator opened meanwhile).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal

import structlog

from ledger_service.api.auth import Principal
from ledger_service.api.routes.dependencies import ApiState, write
from ledger_service.domain.errors import WalletAlreadyExists
from ledger_service.domain.wallet import PoolMode
from ledger_service.service.wallets import OpenWallet

log = structlog.get_logger(__name__)
AUTO_OPEN_KEY = "#auto-open"


@dataclass(frozen=True)
class WalletDefaults:
    """What a wallet opened on first use starts with."""

    currency: str
    postpaid_limit: Decimal
    included_quota: Decimal
    rate_card: dict[str, Decimal]


async def open_on_first_use(state: ApiState, caller: Principal, company_id: str) -> int | None:
    """Open ``company_id``'s wallet if the service opens wallets on first use and the caller
    is that company's tenant: the event-store position it exists at (a read can wait for
    it), or None when it is not opened this way."""
    defaults = state.wallet_defaults
    if defaults is None or caller.company_id != company_id:
        return None
    command = OpenWallet(
        company_id=company_id, currency=defaults.currency, mode=PoolMode.SHARED,
        postpaid_limit=defaults.postpaid_limit, included_quota=defaults.included_quota,
        rate_card=defaults.rate_card, actor=caller.subject, idempotency_key=AUTO_OPEN_KEY,
    )  # fmt: skip
    try:
        opened = await write(state, command)
    except WalletAlreadyExists:  # an operator opened it under another key meanwhile
        head = await asyncio.to_thread(state.ledger.recorder.max_notification_id)
        return head or 0
    log.info("wallet_opened_on_first_use", company_id=company_id, position=opened["position"])
    return opened["position"] or 0
