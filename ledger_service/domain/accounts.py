"""Double entry: every wallet movement names the counter account that takes the other side.

Each ledger event expands into postings whose amounts sum to zero, so the sum over all accounts
is zero at every position (guarantee 3). Wallet accounts are ``wallet:<wallet uuid>``; counter
accounts are the fixed names below. Amounts are from the account holder's side: a wallet credit
is ``+amount`` on the wallet and ``-amount`` on its counter account.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple
from uuid import UUID

CASH_CLEARING = "cash_clearing"
"""Money received from customers against paid top-up invoices."""
REVENUE_USAGE = "revenue:usage"
"""Usage priced and deducted from wallets."""
PROMOTIONS = "promotions"
"""Grants: included quota and goodwill credits that no customer paid for."""
ADJUSTMENTS = "adjustments"
"""Manual corrections by operators."""
REFUNDS = "refunds"
"""Billed usage given back (contra-revenue: net usage revenue is ``revenue:usage`` plus this)."""
COMMISSIONS = "commissions"
"""Commission retained on transfers between wallets."""
TRANSFERS_IN_TRANSIT = "transfers:in_transit"
"""Clearing account of transfers; nets to zero once a transfer has completed."""
POOL_MIGRATION = "pools:migration"
"""Legacy per-sender pools' money on its way into the company's shared pool (nets to zero in
the save that moves it)."""
TAX_PAYABLE = "tax_payable"
"""Tax collected with paid top-up invoices, owed to the tax authority."""
FEE_REVENUE = "revenue:fees"
"""Platform fees collected with paid top-up invoices."""

COUNTER_ACCOUNTS = frozenset(
    {
        CASH_CLEARING,
        REVENUE_USAGE,
        PROMOTIONS,
        ADJUSTMENTS,
        REFUNDS,
        COMMISSIONS,
        TRANSFERS_IN_TRANSIT,
        POOL_MIGRATION,
        TAX_PAYABLE,
        FEE_REVENUE,
    }
)


def wallet_account(wallet_id: UUID) -> str:
    return f"wallet:{wallet_id}"


class Posting(NamedTuple):
    """One side of a movement. A named tuple: immutable like the frozen dataclass it was, and
    about 30% cheaper to build; every money event makes two, on the hot path of a replay."""

    account: str
    amount: Decimal


def balanced_pair(account: str, counter_account: str, amount: Decimal) -> tuple[Posting, Posting]:
    """``amount`` onto ``account`` and its negation onto ``counter_account``."""
    return Posting(account, amount), Posting(counter_account, -amount)
