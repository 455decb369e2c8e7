"""Exact money: ``Decimal`` amounts with a currency, never ``float``.

Amounts travel as decimal strings. Parsing is strict on purpose: a float has already lost
precision before we see it, and an exponent form or a NaN is never a price anyone meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from iso4217 import Currency

from ledger_service.domain.errors import CurrencyMismatch, InvalidAmount, InvalidArgument

FRACTION_DIGITS_MAX = 7
"""At most 7 fractional digits: enough for per-message prices in any currency we sell in."""

AMOUNT_ABS_MAX = Decimal("1000000000000")
"""One trillion: far above any wallet, small enough that a typo in an amount is refused."""

INTEGER_DIGITS_MAX = len(str(int(AMOUNT_ABS_MAX)))
_BELOW_MAX = rf"(0|[1-9][0-9]{{0,{INTEGER_DIGITS_MAX - 2}}})(\.[0-9]{{1,{FRACTION_DIGITS_MAX}}})?"
AMOUNT_PATTERN = rf"^-?({_BELOW_MAX}|{int(AMOUNT_ABS_MAX)}(\.0{{1,{FRACTION_DIGITS_MAX}}})?)$"
"""An amount as text in the external contracts (HTTP API, usage events): a plain decimal of at
most 7 fractional digits, no larger than ``AMOUNT_ABS_MAX`` (so that what the pattern allows,
``parse_amount`` accepts). The one money pattern: schemas derive theirs from it."""
UNSIGNED_AMOUNT_PATTERN = AMOUNT_PATTERN.replace("^-?", "^", 1)
# Above zero: a non-zero integer part, or "0." followed by at most 7 digits not all zero.
_ABOVE_ZERO_FRACTION = "|".join(
    f"0{{{zeros}}}[1-9][0-9]{{0,{FRACTION_DIGITS_MAX - 1 - zeros}}}"
    for zeros in range(FRACTION_DIGITS_MAX)
)
POSITIVE_AMOUNT_PATTERN = (
    rf"^([1-9][0-9]{{0,{INTEGER_DIGITS_MAX - 2}}}(\.[0-9]{{1,{FRACTION_DIGITS_MAX}}})?"
    rf"|0\.({_ABOVE_ZERO_FRACTION})"
    rf"|{int(AMOUNT_ABS_MAX)}(\.0{{1,{FRACTION_DIGITS_MAX}}})?)$"
)
"""An amount above zero (and at most ``AMOUNT_ABS_MAX``): what every top-up, grant, transfer
and adjustment moves; zero would be a request that moves nothing."""
_FRACTION = rf"(\.[0-9]{{1,{FRACTION_DIGITS_MAX}}})?"
PERCENT_PATTERN = rf"^((0|[1-9][0-9]?){_FRACTION}|100(\.0{{1,{FRACTION_DIGITS_MAX}}})?)$"
"""A percentage, 0 to 100 (tax, the low-balance line)."""
FRACTION_PATTERN = rf"^0{_FRACTION}$"
"""A rate at least 0 and below 1 (a transfer's commission)."""

_QUANTUM = Decimal(1).scaleb(-FRACTION_DIGITS_MAX)
# Deliberately looser than AMOUNT_PATTERN: a plain decimal of any reasonable length is lexed,
# so that the checks below can say *why* it is refused (too precise, too large) instead of
# "not a decimal string".
_DECIMAL_TEXT = re.compile(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,40})?")
_CURRENCY_TEXT = re.compile(r"[A-Z]{3}")
_UNIT_TEXT = re.compile(r"[A-Z][A-Z0-9_]{2,15}")

ZERO = Decimal(0)


def parse_amount(
    value: object,
    *,
    field: str = "amount",
    allow_negative: bool = False,
    allow_zero: bool = True,
) -> Decimal:
    """Return ``value`` as an exact ``Decimal`` or raise ``InvalidAmount`` saying why.

    Accepts a decimal string (``"12.5"``), an ``int`` or a finite ``Decimal``. Refuses floats,
    booleans, NaN and infinities, exponent notation, more than 7 fractional digits (trailing
    zeros aside), magnitudes above ``AMOUNT_ABS_MAX`` and, unless allowed, zero or negatives.
    """
    amount = _to_decimal(value, field)
    if not amount.is_finite():
        raise InvalidAmount(f"{field} must be a finite number, got {value!r}")
    if amount != amount.quantize(_QUANTUM, rounding="ROUND_DOWN"):
        raise InvalidAmount(
            f"{field} has more than {FRACTION_DIGITS_MAX} fractional digits: {value!r}"
        )
    if abs(amount) > AMOUNT_ABS_MAX:
        raise InvalidAmount(f"{field} exceeds the maximum of {AMOUNT_ABS_MAX}: {value!r}")
    if amount < 0 and not allow_negative:
        raise InvalidAmount(f"{field} must not be negative, got {value!r}")
    if amount == 0 and not allow_zero:
        raise InvalidAmount(f"{field} must be greater than zero")
    return canonical(amount)


def _to_decimal(value: object, field: str) -> Decimal:
    if isinstance(value, bool | float):
        raise InvalidAmount(
            f"{field} must be a decimal string, not a {type(value).__name__} "
            f"(floats cannot represent money exactly)"
        )
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        if not _DECIMAL_TEXT.fullmatch(value):
            raise InvalidAmount(
                f"{field} must be a plain decimal string like '12.50', got {value!r}"
            )
        try:
            return Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - the pattern already excludes this
            raise InvalidAmount(f"{field} is not a decimal: {value!r}") from exc
    raise InvalidAmount(f"{field} must be a decimal string, got {type(value).__name__}")


def canonical(amount: Decimal) -> Decimal:
    """The amount quantized to 7 places: one representation per value, so sums stay exact."""
    return amount.quantize(_QUANTUM)


def format_amount(amount: Decimal) -> str:
    """Shortest plain decimal string for ``amount`` (``"12.5"``, ``"0"``), never an exponent."""
    if amount == 0:
        return "0"
    return format(amount.normalize(), "f")


PAYABLE_CURRENCIES = frozenset(c.code for c in Currency if c.exponent is not None)
"""ISO 4217 currencies with a minor unit: what an invoice can be issued and paid in (gold and
the like have none)."""


def parse_currency(value: object) -> str:
    if not isinstance(value, str) or not _CURRENCY_TEXT.fullmatch(value):
        raise InvalidArgument(
            f"currency must be a 3-letter upper-case ISO 4217 code, got {value!r}"
        )
    if value not in PAYABLE_CURRENCIES:
        raise InvalidArgument(f"{value} is not an ISO 4217 currency with a minor unit")
    return value


def parse_unit(value: object) -> str:
    """What a wallet is kept in: an ISO 4217 currency, or a unit of account of the service's
    (``CREDIT``, ``DIAMOND``: 3-16 upper-case letters, digits or ``_``; see ``domain.credits``)."""
    if not isinstance(value, str) or not _UNIT_TEXT.fullmatch(value):
        raise InvalidArgument(
            f"currency must be an ISO 4217 code or a unit such as CREDIT (3-16 upper-case "
            f"letters, digits or _), got {value!r}"
        )
    return value


def minor_unit_exponent(currency: str) -> int:
    """Digits after the decimal point of ``currency``'s minor unit, from ISO 4217 (USD 2,
    JPY 0, KWD 3): how payment providers count amounts (``amount_total`` in cents)."""
    try:
        exponent = Currency(parse_currency(currency)).exponent
    except ValueError:
        raise InvalidArgument(f"{currency} is not an ISO 4217 currency") from None
    if exponent is None:  # gold, SDRs and the like: no minor unit, nothing to pay in
        raise InvalidArgument(f"{currency} has no minor unit to pay in")
    return int(exponent)


def to_minor_units(amount: Decimal, currency: str) -> int:
    """``amount`` in minor units (12.34 USD -> 1234); it must be a whole number of them."""
    minor = amount.scaleb(minor_unit_exponent(currency))
    if minor != minor.to_integral_value():
        raise InvalidAmount(f"{format_amount(amount)} {currency} is not whole minor units")
    return int(minor)


def from_minor_units(minor: int, currency: str) -> Decimal:
    """The amount of ``minor`` units (1234 USD cents -> 12.34)."""
    return canonical(Decimal(minor).scaleb(-minor_unit_exponent(currency)))


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency. Arithmetic refuses to mix currencies."""

    amount: Decimal
    currency: str

    @classmethod
    def of(cls, amount: object, currency: object, *, allow_negative: bool = False) -> Money:
        return cls(parse_amount(amount, allow_negative=allow_negative), parse_currency(currency))

    def __add__(self, other: Money) -> Money:
        self._check_same_currency(other)
        return Money(canonical(self.amount + other.amount), self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check_same_currency(other)
        return Money(canonical(self.amount - other.amount), self.currency)

    def _check_same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __str__(self) -> str:
        return f"{format_amount(self.amount)} {self.currency}"
