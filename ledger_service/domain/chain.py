"""Tamper evidence: each wallet's money events form a hash chain.

Every ``Credited`` and ``Debited`` event carries ``entry_hash`` = SHA-256 over the previous
entry's hash, the event's version and its fields (canonical JSON, amounts as decimal strings).
Editing, deleting or inserting a stored money event breaks the chain from that entry on, which
``ledger verify`` reports. (Whoever can rewrite the whole chain can hide an edit; anchor the
head hashes elsewhere - exports, notifications - for evidence against that.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from json.encoder import encode_basestring_ascii

from ledger_service.domain.money import format_amount

GENESIS_HASH = "0" * 64

CREDIT_FIELDS = ("amount", "bucket", "split", "kind", "counter_account", "reference", "actor")
DEBIT_FIELDS = (
    "amount",
    "split",
    "kind",
    "counter_account",
    "reference",
    "sender_id",
    "conversation_id",
    "category",
    "units",
    "unit_price",
    "actor",
)


_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
"""``json.dumps(..., sort_keys=True, separators=(",", ":"))`` without building an encoder per
entry: the general path (``_general_body``)."""

_ascii_string = encode_basestring_ascii
"""A JSON string as ``_CANONICAL_JSON`` writes it (``ensure_ascii``): the json module's own C
function, so the fast path below cannot disagree with it on escaping."""


class _NotFlat(Exception):
    """A value the fast path does not write: the general path hashes the whole entry."""


def entry_hash(previous: str, version: int, entry: Mapping[str, object]) -> str:
    return hashlib.sha256(_canonical_body(previous, version, entry).encode()).hexdigest()


def _canonical_body(previous: str, version: int, entry: Mapping[str, object]) -> str:
    """The canonical JSON of the entry and its link. Every money event is hashed on the
    ingestion path, and the general encoder (a ``_plain`` copy, then the json module's sorting
    encoder) was a third of the time to record a usage debit. Entries of the common shape - a
    ``dict`` of strings, integers, None, decimals and such dicts - are written directly, byte
    for byte as the general path writes them (``tests/unit/test_chain.py`` holds the two
    equal); anything else takes the general path."""
    if type(previous) is str and type(version) is int:
        try:
            entry_json = _flat_object(entry)
        except _NotFlat:
            pass
        else:
            return (
                f'{{"entry":{entry_json},"previous":{_ascii_string(previous)},'
                f'"version":{int.__repr__(version)}}}'
            )
    return _general_body(previous, version, entry)


def _flat_object(mapping: Mapping[str, object]) -> str:
    """``mapping`` as canonical JSON: keys sorted, strings ASCII-escaped, decimals as their
    ``format_amount`` text. One loop with the common types inline: a function call per value
    cost as much as the writing. The sorted keys and their escaped labels are worked out once
    per shape (the keys in the dict's order): entries come in a few shapes."""
    if type(mapping) is not dict:
        raise _NotFlat
    shape = tuple(mapping)
    plan = _KEY_PLANS.get(shape)
    if plan is None:
        plan = _key_plan(shape)
    parts = []
    for key, label in plan:
        value = mapping[key]
        kind = type(value)
        if kind is str:
            parts.append(label + _ascii_string(value))
        elif kind is Decimal:
            # Zero is common (the untouched buckets of a split) and "0" whatever its exponent.
            # Other amounts: digits, "-" and ".", nothing to escape.
            parts.append(f'{label}"{_amount_text(value)}"' if value else label + '"0"')
        elif value is None:
            parts.append(label + "null")
        elif kind is int:
            parts.append(label + int.__repr__(value))
        elif kind is dict:
            parts.append(label + _flat_object(value))
        else:
            raise _NotFlat
    return "{" + ",".join(parts) + "}"


_KeyPlan = tuple[tuple[str, str], ...]
_KEY_PLANS: dict[tuple[str, ...], _KeyPlan] = {}
_KEY_PLANS_MAX = 1024


def _key_plan(shape: tuple[str, ...]) -> _KeyPlan:
    """(key, its JSON text and ":") in sorted order, for keys that are all strings. A shape is
    found again by equality, so a ``str`` subclass key equal to a known one is written as that
    string, as the json module writes any ``str`` subclass key."""
    if any(type(key) is not str for key in shape):
        raise _NotFlat
    plan = tuple((key, f"{_ascii_string(key)}:") for key in sorted(shape))
    if len(_KEY_PLANS) >= _KEY_PLANS_MAX:
        _KEY_PLANS.clear()  # shapes come from code, not data: this guards against a surprise
    _KEY_PLANS[shape] = plan
    return plan


_AMOUNT_TEXTS: dict[Decimal, str] = {}
_AMOUNT_TEXTS_MAX = 4096


def _amount_text(amount: Decimal) -> str:
    """``format_amount``, remembered: a debit's split repeats a few values (zero, the price).
    Keyed by value, which is sound because ``format_amount`` writes equal decimals alike
    (``0.0125000`` and ``0.0125`` both as ``0.0125``)."""
    text = _AMOUNT_TEXTS.get(amount)
    if text is None:
        if len(_AMOUNT_TEXTS) >= _AMOUNT_TEXTS_MAX:
            _AMOUNT_TEXTS.clear()
        text = _AMOUNT_TEXTS[amount] = format_amount(amount)
    return text


def _general_body(previous: str, version: int, entry: Mapping[str, object]) -> str:
    return _CANONICAL_JSON.encode(
        {
            "previous": previous,
            "version": version,
            "entry": {k: _plain(v) for k, v in entry.items()},
        }
    )


_AS_IS = (str, int, type(None))


def _plain(value: object) -> object:
    if type(value) in _AS_IS:  # most fields: skip the slower abstract-class checks below
        return value
    if isinstance(value, Decimal):
        return format_amount(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
