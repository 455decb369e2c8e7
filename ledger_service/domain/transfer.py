"""Transfers between wallets: a gift from one company to another, less a commission.

Postings (sum zero): sender wallet ``-amount`` / in-transit ``+amount`` (the sender's
``Debited``), receiver wallet ``+net`` / in-transit ``-net`` (the receiver's ``Credited``), and
in-transit ``-commission`` / commission account ``+commission`` (this aggregate's
``Completed``). The application saves all three aggregates in one transaction.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger_service.domain.errors import InvalidArgument
from ledger_service.domain.money import FRACTION_DIGITS_MAX, parse_amount

_ONE = Decimal(1)


def commission_of(amount: Decimal, rate: Decimal) -> Decimal:
    """Commission rounded half-up to the ledger's precision."""
    return (amount * rate).quantize(_ONE.scaleb(-FRACTION_DIGITS_MAX), rounding=ROUND_HALF_UP)


def check_commission_rate(rate: object) -> Decimal:
    checked = parse_amount(rate, field="commission_rate")
    if checked >= 1:
        raise InvalidArgument("commission_rate must be at least 0 and below 1")
    return checked


class Transfer(Aggregate):
    class Completed(Aggregate.Created):
        from_wallet_id: UUID
        to_wallet_id: UUID
        from_company_id: str
        to_company_id: str
        currency: str
        amount: Decimal
        commission_rate: Decimal
        commission: Decimal
        net_amount: Decimal
        commission_account: str
        note: str
        actor: str

    @event(Completed)
    def __init__(
        self,
        from_wallet_id: UUID,
        to_wallet_id: UUID,
        from_company_id: str,
        to_company_id: str,
        currency: str,
        amount: Decimal,
        commission_rate: Decimal,
        commission: Decimal,
        net_amount: Decimal,
        commission_account: str,
        note: str,
        actor: str,
    ) -> None:
        self.from_wallet_id = from_wallet_id
        self.to_wallet_id = to_wallet_id
        self.amount = amount
        self.commission = commission
        self.net_amount = net_amount
        self.commission_account = commission_account
