"""Synchronous consumption: a feature that is not a message (an AI summary, an export, storage),
charged through the API when it is used instead of reported afterwards over Kafka.

It is recorded exactly like message usage: a ``Debited`` of kind ``usage`` priced from the rate
card (the feature is the category), drained in the same bucket order, counted by daily caps,
the burn window and the alerts. Two things differ, because the caller asks before it acts:

* it is refused (nothing written) when the wallet's available balance, holds deducted, does not
  cover it: ``INSUFFICIENT_AVAILABLE_BALANCE``; it never runs into overage;
* it is refused when the feature's daily cap is ``hard`` and this would pass it (or the cap was
  reached today): ``SPENDING_CAP_REACHED``. Message usage is a fact and never refused, even
  under a hard cap.

It names no sender: the entry's ``sender_id`` is None (the usage read model counts it under
``NO_SENDER``). Its entry's reference is ``consume:<company>#<reference>``, unique across the
ledger as a usage event's ``source#id`` is (``verify`` checks that none was applied twice); the
command that records it is keyed by the reference, so a retry is answered with the first charge
and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ledger_service.domain.entries import DebitSplit
from ledger_service.domain.errors import InsufficientAvailableBalance, SpendingCapReached
from ledger_service.domain.holds import check_units
from ledger_service.domain.ids import check_key
from ledger_service.domain.money import ZERO
from ledger_service.domain.triggers import SpendingDay
from ledger_service.domain.wallet import Wallet

NO_SENDER = "-"
"""What the usage read model counts consumption under: not a valid sender id, so never one."""


def entry_reference(company_id: str, reference: str) -> str:
    """The reference of a consumption's entry: like a usage event's ``source#id``."""
    return f"consume:{company_id}#{reference}"


@dataclass(frozen=True, slots=True)
class Consumed:
    """What a consumption charged: the rate-card price and the buckets it came from."""

    unit_price: Decimal
    amount: Decimal
    split: DebitSplit


def consume(
    wallet: Wallet,
    *,
    feature: str,
    units: int,
    reference: str,
    actor: str,
    now: datetime,
) -> Consumed:
    """Charge ``units`` of ``feature`` to ``wallet`` in memory (the caller saves), or refuse."""
    check_key(feature, "feature")
    check_units(units)
    amount = wallet.price_of(feature, units)
    _check_hard_cap(wallet, feature, units, amount, now)
    if wallet.available < amount:
        raise InsufficientAvailableBalance(
            f"{units} {feature} cost {amount}, more than the available {wallet.available} "
            f"of {wallet.company_id}"
        )
    unit_price = wallet.rate_card[feature]
    split = wallet.record_usage(
        amount,
        usage_reference=entry_reference(wallet.company_id, reference),
        sender_id=None,
        conversation_id=None,
        category=feature,
        units=units,
        unit_price=unit_price,
        actor=actor,
        at=now,
    )
    return Consumed(unit_price, amount, split)


def _check_hard_cap(
    wallet: Wallet, feature: str, units: int, amount: Decimal, now: datetime
) -> None:
    cap = wallet.spending_caps.get(feature)
    if cap is None or not cap.hard:
        return
    today = SpendingDay.of(now, wallet.cycle_anchor.zone).day
    counted = wallet.spend_day
    tally = counted.categories.get(feature) if counted.day == today else None
    used_units, used_amount = (tally.units, tally.amount) if tally else (0, ZERO)
    if wallet.blocked.get(feature) == today or cap.passed(used_units + units, used_amount + amount):
        raise SpendingCapReached(
            f"{units} {feature} would pass today's hard cap of {feature} "
            f"(used today: {used_units} units, {used_amount})"
        )
