"""Helpers of the batch builder tests: real aggregates, their events applied in log order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from ledger_service.domain import accounts
from ledger_service.domain.topup import TopupRequest
from ledger_service.domain.wallet import CreditBucket, CreditKind, PoolMode, Wallet
from projections.builder import BatchBuilder
from projections.rows import WalletRow

D = Decimal


class Log:
    """The notification log in memory: each aggregate's new events at the next positions, applied
    to one builder as the projector would."""

    def __init__(self) -> None:
        self.builder = BatchBuilder(wallets={}, topups={})
        self.position = 0
        self.events: list[tuple[int, Any]] = []

    def record(self, *aggregates: Aggregate) -> list[Any]:
        recorded = []
        for aggregate in aggregates:
            for event in aggregate.collect_events():
                self.position += 1
                self.builder.apply(self.position, event)
                self.events.append((self.position, event))
                recorded.append(event)
        return recorded

    def wallet(self, wallet: Wallet) -> WalletRow:
        return self.builder.wallets[wallet.id]


def open_wallet(company: str = "acme", *, limit: str = "0", sender: str = "waba-1") -> Wallet:
    wallet = Wallet.open(
        company_id=company,
        currency="USD",
        mode=PoolMode.SHARED,
        postpaid_limit=D(limit),
        included_quota=D(5),
        rate_card={"marketing": D("0.05"), "utility": D("0.01")},
        actor="op",
    )
    wallet.link_sender(sender, actor="op")
    return wallet


def credit(wallet: Wallet, amount: str, bucket: CreditBucket = CreditBucket.PREPAID) -> None:
    included = bucket is CreditBucket.INCLUDED
    wallet.credit(
        D(amount),
        bucket=bucket,
        kind=CreditKind.GRANT if included else CreditKind.TOPUP,
        counter_account=accounts.PROMOTIONS if included else accounts.CASH_CLEARING,
        reference="quota" if included else "t1",
        actor="op",
    )


def use(wallet: Wallet, amount: str, *, units: int = 1, category: str = "marketing") -> None:
    wallet.record_usage(
        D(amount),
        usage_reference=f"src#{uuid4().hex}",
        sender_id="waba-1",
        conversation_id="c1",
        category=category,
        units=units,
        unit_price=D(amount) / units,
        actor="ingestion",
    )


def request_topup(wallet_id: UUID) -> TopupRequest:
    return TopupRequest.request(
        company_id="acme", wallet_id=wallet_id, amount=D(50), currency="USD", note="n",
        actor="alice",
    )  # fmt: skip
