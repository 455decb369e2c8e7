"""Expands ledger events into balanced postings (double entry, guarantee 3)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from ledger_service.domain.accounts import (
    CASH_CLEARING,
    FEE_REVENUE,
    TAX_PAYABLE,
    Posting,
    balanced_pair,
    wallet_account,
)
from ledger_service.domain.topup import TopupRequest
from ledger_service.domain.transfer import Transfer
from ledger_service.domain.wallet import Wallet


def postings_of(domain_event: DomainEventProtocol[UUID]) -> tuple[Posting, ...]:
    """The postings of one event; empty for events that move no money."""
    # Debits first: nearly every event is one (usage).
    if isinstance(domain_event, Wallet.Debited):
        account = wallet_account(domain_event.originator_id)
        return balanced_pair(account, domain_event.counter_account, -domain_event.amount)
    if isinstance(domain_event, Wallet.Credited):
        account = wallet_account(domain_event.originator_id)
        return balanced_pair(account, domain_event.counter_account, domain_event.amount)
    if isinstance(domain_event, Transfer.Completed):
        return balanced_pair(
            domain_event.commission_account, "transfers:in_transit", domain_event.commission
        )
    if isinstance(domain_event, TopupRequest.ChargesCollected):
        # The payer paid the total into cash clearing: the wallet's part is its Credited
        # event; the tax and the fee go to their accounts here.
        return (
            *balanced_pair(TAX_PAYABLE, CASH_CLEARING, domain_event.tax),
            *balanced_pair(FEE_REVENUE, CASH_CLEARING, domain_event.fee),
        )
    return ()


def trial_balance(events: Iterable[DomainEventProtocol[UUID]]) -> dict[str, Decimal]:
    """Sum per account over ``events``; the values always sum to zero."""
    totals: dict[str, Decimal] = {}
    for domain_event in events:
        for posting in postings_of(domain_event):
            totals[posting.account] = totals.get(posting.account, Decimal(0)) + posting.amount
    return totals
