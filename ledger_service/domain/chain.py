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
entry (the hash is computed for every money event)."""


def entry_hash(previous: str, version: int, entry: Mapping[str, object]) -> str:
    body = _CANONICAL_JSON.encode(
        {
            "previous": previous,
            "version": version,
            "entry": {k: _plain(v) for k, v in entry.items()},
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


_AS_IS = (str, int, type(None))


def _plain(value: object) -> object:
    if type(value) in _AS_IS:  # most fields: skip the slower abstract-class checks below
        return value
    if isinstance(value, Decimal):
        return format_amount(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
