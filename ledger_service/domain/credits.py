"""Credits as a unit of account: a wallet kept in ``CREDIT`` (or another named unit, e.g.
``DIAMOND``) while its top-ups are invoiced and paid in money.

The service's rates (``LEDGER_CREDIT_RATES``) say how many units one unit of a currency buys,
per unit: ``{"CREDIT": {"INR": "10", "USD": "800"}}`` makes 10 INR buy 100 credits. A top-up of
such a wallet is requested in money; the rate of that moment is recorded on it
(``TopupRequest.CreditsQuoted``, in the save that requests it), so a later change of rates never
changes what an open invoice buys. The invoice (tax, fee, total, the card payment) is in money;
the wallet is credited the quoted units when it is paid.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from ledger_service.domain.errors import CurrencyMismatch, InvalidArgument
from ledger_service.domain.money import canonical, parse_amount, parse_currency, parse_unit

CreditRates = Mapping[str, Mapping[str, Decimal]]
"""Unit -> currency -> units one unit of the currency buys."""


def check_credit_rates(rates: Mapping[str, Mapping[str, object]]) -> dict[str, dict[str, Decimal]]:
    checked: dict[str, dict[str, Decimal]] = {}
    for unit, by_currency in rates.items():
        parse_unit(unit)
        if len(unit) == 3 and unit.isalpha():
            raise InvalidArgument(f"{unit} reads as a currency code: name a unit of 4+ letters")
        checked[unit] = {
            parse_currency(currency): parse_amount(rate, field=f"rate of {unit} in {currency}",
                                                   allow_zero=False)
            for currency, rate in by_currency.items()
        }  # fmt: skip
    return checked


def credits_bought(
    rates: CreditRates, unit: str, currency: str, amount: Decimal
) -> tuple[Decimal, Decimal]:
    """(rate, units) that ``amount`` of ``currency`` buys of ``unit``."""
    rate = rates.get(unit, {}).get(currency)
    if rate is None:
        priced_in = sorted(rates.get(unit, {}))
        raise CurrencyMismatch(
            f"{unit} is not sold for {currency}; it is sold for {', '.join(priced_in) or 'nothing'}"
        )
    return rate, canonical(amount * rate)
