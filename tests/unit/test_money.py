from decimal import Decimal

import pytest

from ledger_service.domain.errors import CurrencyMismatch, InvalidAmount, InvalidArgument
from ledger_service.domain.money import Money, format_amount, parse_amount, parse_currency


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.5", "12.5"),
        ("0", "0"),
        (7, "7"),
        (Decimal("0.0000001"), "0.0000001"),
        ("1.50000000000", "1.5"),
        ("1000000000000", "1000000000000"),
    ],
)
def test_accepts_exact_decimals(value: object, expected: str) -> None:
    assert format_amount(parse_amount(value)) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (1.5, "not a float"),
        (True, "not a bool"),
        ("NaN", "plain decimal string"),
        ("Infinity", "plain decimal string"),
        (Decimal("NaN"), "finite"),
        (Decimal("-Infinity"), "finite"),
        ("1e5", "plain decimal string"),
        (" 1", "plain decimal string"),
        ("0.00000001", "more than 7 fractional digits"),
        ("1000000000000.1", "exceeds the maximum"),
        ("-1", "must not be negative"),
        (None, "decimal string"),
        ("", "plain decimal string"),
        ("01", "plain decimal string"),
    ],
)
def test_refuses_bad_amounts_with_a_clear_reason(value: object, fragment: str) -> None:
    with pytest.raises(InvalidAmount, match=fragment) as info:
        parse_amount(value)
    assert info.value.code == "INVALID_AMOUNT"


def test_zero_and_negative_only_where_allowed() -> None:
    with pytest.raises(InvalidAmount, match="greater than zero"):
        parse_amount("0", allow_zero=False)
    assert parse_amount("-2.5", allow_negative=True) == Decimal("-2.5")


def test_money_refuses_mixed_currencies() -> None:
    total = Money.of("1.10", "USD") + Money.of("2.20", "USD")
    assert str(total) == "3.3 USD"
    with pytest.raises(CurrencyMismatch):
        _ = Money.of("1", "USD") + Money.of("1", "EUR")


@pytest.mark.parametrize("currency", ["usd", "US", "EURO", 840, None])
def test_refuses_bad_currencies(currency: object) -> None:
    with pytest.raises(InvalidArgument, match="ISO 4217"):
        parse_currency(currency)


def test_the_contracts_use_the_domains_one_money_pattern() -> None:
    import re

    from ledger_service.domain.money import (
        AMOUNT_PATTERN,
        POSITIVE_AMOUNT_PATTERN,
        UNSIGNED_AMOUNT_PATTERN,
    )
    from schemas.requests import AutoTopupIn, PackIn, TopupRequestIn
    from schemas.usage_event import UsageEventData

    amount = TopupRequestIn.model_json_schema()["properties"]["amount"]
    assert amount["pattern"] == POSITIVE_AMOUNT_PATTERN, "a top-up moves money"
    bonus = PackIn.model_json_schema()["properties"]["bonus"]
    assert bonus["pattern"] == UNSIGNED_AMOUNT_PATTERN, "amounts are not negative"
    trigger = AutoTopupIn.model_json_schema()["properties"]["trigger_balance"]
    assert trigger["pattern"] == AMOUNT_PATTERN, "a trigger may be below zero"
    unit_price = UsageEventData.model_json_schema()["properties"]["unit_price"]
    assert {"type": "string", "pattern": UNSIGNED_AMOUNT_PATTERN} in unit_price["anyOf"]
    pattern = re.compile(AMOUNT_PATTERN)
    for accepted in ("0", "12.5", "-3.0000001", "1000000000000", "999999999999.9999999"):
        assert pattern.fullmatch(accepted), accepted
        parse_amount(accepted, allow_negative=True)
    for refused in ("10000000000000", "1000000000000.5", "1000000000001", "5043884085798",
                    "1.12345678", "1e3", "01", ".5", "NaN"):  # fmt: skip
        assert not pattern.fullmatch(refused), refused
        with pytest.raises(InvalidAmount):
            parse_amount(refused, allow_negative=True)
