"""Bytes to a validated ``Usage``, or the reason it cannot be one.

Both CloudEvents Kafka modes are read: *structured* (the whole event as the JSON value) and
*binary* (the attributes as ``ce_*`` headers, ``content-type`` as the data's media type, the
data alone as the value), which many producers' SDKs default to. A binary event is rebuilt as
the structured document it stands for and validated by the same contract.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from ledger_service.domain.money import parse_amount
from ledger_service.domain.usage import Usage
from ledger_service.ingestion import usage_struct
from ledger_service.ingestion.records import Consumed, DeadLetter
from ledger_service.ingestion.usage_struct import UsageEventStruct
from schemas.usage_event import USAGE_EVENT_TYPE, UsageEvent

MESSAGE_LENGTH_MAX = 500


def decode(record: Consumed) -> Usage | DeadLetter:
    if record.value is not None and not _is_binary_mode(record):
        # The common case, validated straight from the bytes by msgspec (``usage_struct``): a
        # quarter of the time of pydantic's own JSON parser. Any record it does not accept
        # goes the long way, which decides by the contract's model and names the refusal
        # exactly as it always has; the two decide alike (a property test holds them to it).
        event = usage_struct.decoded(record.value)
        if event is not None:
            return _usage(record, event)
    return decode_stepwise(record)


def decode_stepwise(record: Consumed) -> Usage | DeadLetter:
    """``decode`` one step at a time: JSON, the binary mode's headers, the type, the model."""
    if record.value is None:
        return DeadLetter(record, "MALFORMED_JSON", "the message has no value (tombstone)")
    try:
        document = json.loads(record.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return DeadLetter(record, "MALFORMED_JSON", f"not JSON: {exc}"[:MESSAGE_LENGTH_MAX])
    if _is_binary_mode(record):
        document = _structured(record, document)
        if isinstance(document, DeadLetter):
            return document
    if not isinstance(document, dict):
        return DeadLetter(record, "SCHEMA_VIOLATION", "a CloudEvent must be a JSON object")
    event_type = document.get("type")
    if event_type != USAGE_EVENT_TYPE:
        # Never guess at an unknown type: a newer producer may mean something else by it.
        return DeadLetter(record, "UNKNOWN_TYPE", f"unknown event type {event_type!r}")
    try:
        event = UsageEvent.model_validate(document)
    except ValidationError as exc:
        return DeadLetter(record, "SCHEMA_VIOLATION", _summary(exc))
    return _usage(record, event)


def _usage(record: Consumed, event: UsageEvent | UsageEventStruct) -> Usage | DeadLetter:
    data = event.data
    if record.key is not None and record.key != data.company_id.encode():
        # The key is the partitioning (and so the ordering) guarantee of a company's pool.
        return DeadLetter(
            record,
            "KEY_MISMATCH",
            f"message key {record.key!r} is not data.company_id {data.company_id!r}",
        )
    return Usage(  # by position: a third of the time of keywords, once per record
        event.source,
        event.id,
        data.company_id,
        data.waba_id,
        data.conversation_id,
        data.category,
        data.status,
        data.units,
        None if data.unit_price is None else parse_amount(data.unit_price),
        data.currency,
    )


BINARY_PREFIX = "ce_"
CONTENT_TYPE = "content-type"


def _is_binary_mode(record: Consumed) -> bool:
    return any(name == "ce_specversion" for name, _ in record.headers)


def _structured(record: Consumed, data: object) -> dict[str, object] | DeadLetter:
    """The structured event a binary-mode record stands for (its headers' attributes and
    ``data``); a header that is not UTF-8, or a data media type other than JSON, refused."""
    document: dict[str, object] = {"data": data}
    for name, value in record.headers:
        try:
            text = value.decode()
        except UnicodeDecodeError:
            return DeadLetter(record, "SCHEMA_VIOLATION", f"header {name!r} is not UTF-8")
        if name.startswith(BINARY_PREFIX):
            document[name[len(BINARY_PREFIX) :]] = text
        elif name.lower() == CONTENT_TYPE:
            media_type = text.split(";")[0].strip()
            if media_type != "application/json":
                return DeadLetter(
                    record, "SCHEMA_VIOLATION", f"binary-mode data of type {media_type!r}: "
                    "the usage event's data is application/json",
                )  # fmt: skip
            document["datacontenttype"] = media_type
    return document


def _summary(exc: ValidationError) -> str:
    parts = [
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()[:5]
    ]
    return "; ".join(parts)[:MESSAGE_LENGTH_MAX]
