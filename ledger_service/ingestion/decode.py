"""Bytes to a validated ``Usage``, or the reason it cannot be one."""

from __future__ import annotations

import json

from pydantic import ValidationError

from ledger_service.domain.money import parse_amount
from ledger_service.domain.usage import Usage
from ledger_service.ingestion.records import Consumed, DeadLetter
from schemas.usage_event import USAGE_EVENT_TYPE, UsageEvent

MESSAGE_LENGTH_MAX = 500


def decode(record: Consumed) -> Usage | DeadLetter:
    if record.value is None:
        return DeadLetter(record, "MALFORMED_JSON", "the message has no value (tombstone)")
    try:
        document = json.loads(record.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return DeadLetter(record, "MALFORMED_JSON", f"not JSON: {exc}"[:MESSAGE_LENGTH_MAX])
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
    data = event.data
    if record.key is not None and record.key != data.company_id.encode():
        # The key is the partitioning (and so the ordering) guarantee of a company's pool.
        return DeadLetter(
            record,
            "KEY_MISMATCH",
            f"message key {record.key!r} is not data.company_id {data.company_id!r}",
        )
    return Usage(
        source=event.source,
        event_id=event.id,
        company_id=data.company_id,
        waba_id=data.waba_id,
        conversation_id=data.conversation_id,
        category=data.category,
        status=data.status,
        units=data.units,
        unit_price=None if data.unit_price is None else parse_amount(data.unit_price),
        currency=data.currency,
    )


def _summary(exc: ValidationError) -> str:
    parts = [
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()[:5]
    ]
    return "; ".join(parts)[:MESSAGE_LENGTH_MAX]
