"""Transfers between wallets: a gift from one company to another, less a commission.

Postings (sum zero): sender wallet ``-amount`` / in-transit ``+amount`` (the sender's
``Debited``), receiver wallet ``+net`` / in-transit ``-net`` (the receiver's ``Credited``), and
in-transit ``-commission`` / commission account ``+commission`` (this aggregate's
``Completed``). The application saves all three aggregates in one transaction. When the
commission goes to an agency's wallet (tenant transfers, ``LEDGER_TRANSFER_AGENCY_COMPANY``), the
commission account pays it on: agency wallet ``+commission`` / commission account
``-commission`` (the agency's ``Credited``), in the same transaction.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any
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


GIFT_MESSAGE_LENGTH_MAX = 500


class Transfer(Aggregate):
    class Completed(Aggregate.Created):
        """Version 2 added the gift (``gift_type``, ``message``) of tenant transfers; a
        version 1 transfer (operators only) carried none."""

        class_version = 2

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
        gift_type: str | None
        message: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["gift_type"] = None
            state["message"] = ""

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
        gift_type: str | None = None,
        message: str = "",
    ) -> None:
        self.from_wallet_id = from_wallet_id
        self.to_wallet_id = to_wallet_id
        self.amount = amount
        self.commission = commission
        self.net_amount = net_amount
        self.commission_account = commission_account
        self.gift_type = gift_type
        self.message = message
