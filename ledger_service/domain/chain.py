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


def entry_hash(previous: str, version: int, entry: Mapping[str, object]) -> str:
    body = json.dumps(
        {
            "previous": previous,
            "version": version,
            "entry": {k: _plain(v) for k, v in entry.items()},
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _plain(value: object) -> object:
    if isinstance(value, Decimal):
        return format_amount(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
