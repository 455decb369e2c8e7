"""The API's field types say in the schema what they accept, and accept what they say: amounts
above zero, percentages, rates, storable text, whole numbers, time zones, the units of
account a service is configured with."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from ledger_service.domain.money import (
    POSITIVE_AMOUNT_PATTERN,
    UNSIGNED_AMOUNT_PATTERN,
    parse_amount,
)
from schemas.api import (
    WHOLE,
    Fraction,
    Percent,
    PositiveMoney,
    SignedMoney,
    Text,
    TimeZone,
    document_units,
)
from schemas.requests import ConfigureWalletIn, OpenWalletIn, SpendingCapIn

UNSIGNED = re.compile(UNSIGNED_AMOUNT_PATTERN)
POSITIVE = re.compile(POSITIVE_AMOUNT_PATTERN)


@given(st.from_regex(UNSIGNED, fullmatch=True))
def test_the_positive_pattern_is_exactly_the_amounts_above_zero(text: str) -> None:
    above_zero = parse_amount(text) > 0
    assert bool(POSITIVE.fullmatch(text)) == above_zero
    accepted = _accepts(PositiveMoney, text)
    assert accepted == above_zero


def _accepts(kind: Any, value: object) -> bool:
    try:
        TypeAdapter(kind).validate_python(value)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    ("kind", "accepted", "refused"),
    [
        (Percent, ["0", "18", "99.9999999", "100", "100.0"], ["100.01", "101", "-1", "007"]),
        (Fraction, ["0", "0.05", "0.9999999"], ["1", "1.0", "-0.1"]),
        (SignedMoney, ["-25", "0", "12.5"], ["-1000000000001", "1e3"]),
        (Text, ["", "plain", "emoji \U0001f600"], ["nul \x00", "lone \udc00", "x" * 501]),
        (Annotated[int, WHOLE], [6, 6.0], [6.5, "6", True]),
        (TimeZone, ["Asia/Kolkata", "UTC"], ["Mars/Base", ""]),
    ],
)
def test_each_type_accepts_what_its_schema_allows(
    kind: Any, accepted: list[object], refused: list[object]
) -> None:
    pattern = TypeAdapter(kind).json_schema().get("pattern")
    for value in accepted:
        assert _accepts(kind, value), value
        if pattern and isinstance(value, str):
            assert re.search(pattern, value), value
    for value in refused:
        assert not _accepts(kind, value), value


def test_a_patch_or_a_cap_that_says_nothing_is_schema_invalid() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    patch = ConfigureWalletIn.model_json_schema()
    cap = SpendingCapIn.model_json_schema()
    assert not jsonschema.Draft202012Validator(patch).is_valid({"rate_card": None})
    assert jsonschema.Draft202012Validator(patch).is_valid({"postpaid_limit": "5"})
    assert not jsonschema.Draft202012Validator(cap).is_valid({"hard": True})
    assert jsonschema.Draft202012Validator(cap).is_valid({"units": 10})


def test_a_rate_card_allows_no_key_but_a_category() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = OpenWalletIn.model_json_schema()
    body = {"company_id": "acme", "currency": "INR", "rate_card": {"bad key!": "1"}}
    assert not jsonschema.Draft202012Validator(schema).is_valid(body)


@pytest.mark.parametrize(("units", "allowed"), [([], ["INR"]), (["CREDIT"], ["INR", "CREDIT"])])
def test_the_schema_names_the_units_of_account_of_the_service(
    units: list[str], allowed: list[str]
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    document = {"components": {"schemas": {"OpenWalletIn": OpenWalletIn.model_json_schema()}}}
    document_units(document, units)
    schema = document["components"]["schemas"]["OpenWalletIn"]
    for currency in [*allowed, "DIAMOND", "IN_R"]:
        body = {"company_id": "acme", "currency": currency}
        assert jsonschema.Draft202012Validator(schema).is_valid(body) == (currency in allowed)


def test_money_is_canonical_text() -> None:
    assert TypeAdapter(PositiveMoney).validate_python("12.50") == "12.5"
    assert Decimal(TypeAdapter(Percent).validate_python("18.0")) == 18
