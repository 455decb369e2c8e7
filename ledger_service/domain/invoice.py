"""A top-up's invoice: the amount credited, the tax on it, the platform fee, and the total the
payer is charged.

Rounding rule: tax and fee are each computed on the credited amount and rounded half-even
(banker's rounding) to the currency's minor unit (ISO 4217 exponent), and the total is their
exact sum, so ``total = credit + tax + fee`` holds to the minor unit (and the payer is charged
whole minor units when the amount is; a card order refuses one that is not). Where each part
goes (double entry, at payment): the wallet receives the credit, ``tax_payable`` the tax,
``revenue:fees`` the fee, and ``cash_clearing`` gives up the total (see ``books.postings_of``).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import NamedTuple

from ledger_service.domain.errors import InvalidArgument
from ledger_service.domain.money import ZERO, canonical, minor_unit_exponent

PERCENT_MAX = Decimal(100)


class InvoiceLines(NamedTuple):
    credit: Decimal
    tax_percent: Decimal
    tax: Decimal
    fee_percent: Decimal
    fee: Decimal

    @property
    def total(self) -> Decimal:
        return canonical(self.credit + self.tax + self.fee)


def check_percent(value: Decimal, field: str) -> Decimal:
    if not Decimal(0) <= value <= PERCENT_MAX:
        raise InvalidArgument(f"{field} must be between 0 and 100, got {value}")
    return canonical(value)


def invoice_lines(
    credit: Decimal, currency: str, *, tax_percent: Decimal, fee_percent: Decimal
) -> InvoiceLines:
    """The invoice of crediting ``credit``, with tax and fee rounded as the module says."""
    tax_percent = check_percent(tax_percent, "tax_percent")
    fee_percent = check_percent(fee_percent, "fee_percent")
    if not tax_percent and not fee_percent:  # nothing to round: any currency code will do
        return InvoiceLines(canonical(credit), tax_percent, ZERO, fee_percent, ZERO)
    quantum = Decimal(1).scaleb(-minor_unit_exponent(currency))

    def part(percent: Decimal) -> Decimal:
        return canonical((credit * percent / PERCENT_MAX).quantize(quantum, ROUND_HALF_EVEN))

    return InvoiceLines(canonical(credit), tax_percent, part(tax_percent), fee_percent,
                        part(fee_percent))  # fmt: skip
