"""The hash chain's entry hash is a stored fact: it must never change for the same entry."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_service.domain.chain import (
    GENESIS_HASH,
    _canonical_body,
    _flat_object,
    _general_body,
    entry_hash,
)
from ledger_service.domain.money import format_amount


def reference_hash(previous: str, version: int, entry: Mapping[str, object]) -> str:
    """The definition the stored chains were written with."""

    def plain(value: object) -> object:
        if isinstance(value, Decimal):
            return format_amount(value)
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    body = json.dumps(
        {
            "previous": previous,
            "version": version,
            "entry": {k: plain(v) for k, v in entry.items()},
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


USAGE_ENTRY: dict[str, object] = {
    "amount": Decimal("0.0125000"),
    "split": {"included": Decimal(0), "prepaid": Decimal("0.0125"), "postpaid": Decimal(0)},
    "kind": "usage",
    "counter_account": "revenue:usage",
    "reference": "//wa#m1",
    "sender_id": "w1",
    "conversation_id": "c1",
    "category": "marketing",
    "units": 1,
    "unit_price": Decimal("0.0125"),
    "actor": "ingestion",
}


def test_a_known_entry_keeps_its_hash() -> None:
    assert entry_hash(GENESIS_HASH, 7, USAGE_ENTRY) == (
        "1d6233df06da75f9a222e5dd07b83daec5c934215bb27f2dc2d37e1f21621122"
    )


amounts = st.decimals(min_value=-(10**9), max_value=10**9, places=7, allow_nan=False)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(),
    amounts,
    st.dictionaries(st.text(max_size=12), amounts, max_size=6),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=3),
    # Nested values the fast path does not write (non-str keys, bools, floats) and the
    # shapes it does, so both paths are held to the definition.
    st.dictionaries(
        st.one_of(st.text(max_size=6), st.integers()),
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6), amounts),
        max_size=4,
    ),
)


@given(
    previous=st.text(min_size=64, max_size=64, alphabet="0123456789abcdef"),
    version=st.integers(min_value=1, max_value=10**9),
    entry=st.dictionaries(st.text(max_size=20), values, max_size=12),
)
def test_entry_hash_equals_its_definition(
    previous: str, version: int, entry: dict[str, object]
) -> None:
    assert entry_hash(previous, version, entry) == reference_hash(previous, version, entry)


class Kind(StrEnum):
    USAGE = "usage"


@pytest.mark.parametrize(
    "entry",
    [
        USAGE_ENTRY,
        {**USAGE_ENTRY, "amount": Decimal("-0"), "unit_price": Decimal("0.0125")},
        {**USAGE_ENTRY, "amount": Decimal("0.0125"), "unit_price": Decimal("0.0125000")},
        {**USAGE_ENTRY, "kind": Kind.USAGE},  # a str subclass: the general path
        {**USAGE_ENTRY, "reference": 'caf\u00e9 "quoted" \\ \n \u2028 \ud800'},
        {**USAGE_ENTRY, "split": {"grant:g\u00e9": Decimal("1.5"), "included": Decimal(0)}},
    ],
)
def test_entries_of_every_shape_hash_as_defined(entry: dict[str, object]) -> None:
    assert entry_hash(GENESIS_HASH, 3, entry) == reference_hash(GENESIS_HASH, 3, entry)


def test_the_usage_entry_is_written_by_the_fast_path() -> None:
    """Not a rule of the chain, but of its cost: every usage debit is hashed."""
    assert _canonical_body(GENESIS_HASH, 3, USAGE_ENTRY) == _general_body(
        GENESIS_HASH, 3, USAGE_ENTRY
    )
    assert _flat_object(USAGE_ENTRY).startswith('{"actor":"ingestion","amount":"0.0125"')
