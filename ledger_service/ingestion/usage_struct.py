"""The usage-event contract as msgspec structs: the decoder's fast path.

``schemas.usage_event`` is the contract's definition (its JSON schema is generated from it).
This mirror exists because decoding a record with msgspec is a quarter of the time pydantic
takes, and every usage event is decoded. It may refuse more than the contract does, never
less: whatever it refuses goes to the pydantic path, which decides (and names the refusal).
``tests/unit/test_usage_decode_fuzz.py`` holds the two paths to the same decisions.

Where the two libraries differ, this side is the stricter one:

* msgspec matches patterns with ``re.search``, where ``$`` also matches before a final
  newline; pydantic's ``$`` does not. The contract's patterns are anchored with ``\\A`` and
  ``\\Z`` here instead.
* ``time``: only ``YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+HH:MM|-HH:MM)`` with an upper-case ``T``
  and ``Z``, and a date and time that exist (``valid_time``); other spellings the contract
  allows (lower case, longer fractions) take the pydantic path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from ledger_service.domain.money import UNSIGNED_AMOUNT_PATTERN
from schemas.usage_event import KEY_PATTERN


def _whole_text(pattern: str) -> str:
    """A contract pattern ``^...$`` as one that must match the whole text under ``re``."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise ValueError(f"not an anchored pattern: {pattern!r}")
    return rf"\A{pattern[1:-1]}\Z"


_Key = Annotated[str, msgspec.Meta(pattern=_whole_text(KEY_PATTERN))]
_TIME = (
    r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-][0-9]{2}:[0-5][0-9])\Z"
)


class UsageDataStruct(msgspec.Struct, frozen=True):
    company_id: _Key
    waba_id: _Key
    conversation_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    category: _Key
    status: Literal["sent", "delivered", "read", "failed"]
    units: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1
    unit_price: (
        Annotated[str, msgspec.Meta(pattern=_whole_text(UNSIGNED_AMOUNT_PATTERN))] | None
    ) = None
    currency: Annotated[str, msgspec.Meta(pattern=_whole_text(r"^[A-Z]{3}$"))] | None = None


class UsageEventStruct(msgspec.Struct, frozen=True):
    specversion: Literal["1.0"]
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    type: Literal["message.sent"]
    data: UsageDataStruct
    time: Annotated[str, msgspec.Meta(pattern=_TIME)] | None = None
    subject: str | None = None
    datacontenttype: Literal["application/json"] | None = None


DECODER = msgspec.json.Decoder(UsageEventStruct)


def valid_time(text: str | None) -> bool:
    """Is ``text`` (already of ``_TIME``'s shape) a date and time that exist? ``fromisoformat``
    refuses hour 24, second 60, 30 February and offsets of 24 hours, as pydantic does."""
    if text is None:
        return True
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def decoded(value: bytes) -> UsageEventStruct | None:
    """The event, or None when this path does not accept it (the pydantic path decides)."""
    try:
        event = DECODER.decode(value)
    except msgspec.MsgspecError:
        return None
    return event if valid_time(event.time) else None
