"""The stored events' JSON, written faster for the common case, byte for byte the same.

The library's ``JSONTranscoder`` hands every decimal, time and id to a Python callback that
builds a small dict for the C encoder to write: about a fifth of ingestion time went there (a
usage debit holds six decimals and a time). ``FastJSONTranscoder`` writes a plain ``dict`` of
strings, integers, booleans, None, decimals, times, ids and such dicts itself, as the library
would (same tags, same separators, same key order, non-ASCII kept); anything else (lists, sets,
floats, the wallet's policy values in snapshots) goes to the library's encoder unchanged.
Decoding is the library's. ``tests/unit/test_event_encoding.py`` holds the two equal.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any
from uuid import UUID

from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex

_quoted = encode_basestring
"""JSON string with ``ensure_ascii=False``: what the library's encoder writes for a str."""


class _Unsupported(Exception):
    """A value the fast path does not write: the library's encoder takes the whole object."""


class FastJSONTranscoder(JSONTranscoder):
    def encode(self, obj: Any) -> bytes:
        if type(obj) is dict and self._standard():
            try:
                return self._dict(obj).encode("utf8")
            except _Unsupported:
                pass
        return super().encode(obj)

    def _standard(self) -> bool:
        """The fast path writes the library's own tags: only while those are registered."""
        return (
            type(self.types.get(Decimal)) is DecimalAsStr
            and type(self.types.get(datetime)) is DatetimeAsISO
            and type(self.types.get(UUID)) is UUIDAsHex
        )

    def _dict(self, obj: dict[Any, Any]) -> str:
        # One loop with the common types inline: a method call per value cost as much as the
        # writing (a usage debit has thirteen values and a four-part split). Keys are written
        # from ``_labels`` (a few dozen names recur); the texts of decimals, times and ids
        # hold nothing JSON escapes, so they are not passed through the escaping.
        labels = _LABELS
        parts = []
        for key, value in obj.items():
            label = labels.get(key)
            if label is None:
                label = _label(key)
            kind = type(value)
            if kind is str:
                parts.append(label + _quoted(value))
            elif kind is Decimal:
                parts.append(f'{label}{_DECIMAL_TAG}"{value.__str__()}"}}')
            elif value is None:
                parts.append(label + "null")
            elif kind is int:
                parts.append(label + int.__repr__(value))
            elif kind is dict:
                parts.append(label + self._dict(value))
            else:
                parts.append(label + self._value(value))
        return "{" + ",".join(parts) + "}"

    def _value(self, value: Any) -> str:
        """The rarer types of ``_dict``'s values."""
        kind = type(value)
        if kind is bool:
            return "true" if value else "false"
        if kind is datetime:
            return f'{_DATETIME_TAG}"{value.isoformat()}"}}'
        if kind is UUID:
            return f'{_UUID_TAG}"{value.hex}"}}'
        raise _Unsupported


_LABELS: dict[str, str] = {}
"""Key -> its JSON string and ":" (only exact ``str`` keys; see ``_label``)."""
_LABELS_MAX = 4096


def _label(key: object) -> str:
    """``key``'s JSON string and ":", remembered. Only an exact ``str`` is remembered: a key
    equal to a remembered one finds it, and a ``str`` subclass equal to a ``str`` is written as
    that string, which is what the library's encoder writes for it too."""
    if type(key) is not str:
        raise _Unsupported
    if len(_LABELS) >= _LABELS_MAX:
        _LABELS.clear()  # keys are field names and grant ids: a guard, not a working limit
    label = _LABELS[key] = f"{_quoted(key)}:"
    return label


_DECIMAL_TAG = f'{{"_type_":"{DecimalAsStr.name}","_data_":'
_DATETIME_TAG = f'{{"_type_":"{DatetimeAsISO.name}","_data_":'
_UUID_TAG = f'{{"_type_":"{UUIDAsHex.name}","_data_":'
