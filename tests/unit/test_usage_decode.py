import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger_service.domain.usage import Usage
from ledger_service.ingestion.decode import decode
from ledger_service.ingestion.records import Consumed, DeadLetter
from schemas.usage_event import usage_event_json_schema

SCHEMA_FILE = Path(__file__).parents[2] / "schemas" / "usage_event.v1.schema.json"


def event(**overrides: Any) -> dict[str, Any]:
    data = {
        "company_id": "acme",
        "waba_id": "waba-1",
        "conversation_id": "conv-9",
        "category": "marketing",
        "status": "delivered",
        "units": 1,
    }
    document: dict[str, Any] = {
        "specversion": "1.0",
        "id": "msg-0001",
        "source": "//messaging/whatsapp",
        "type": "message.sent",
        "time": "2026-11-22T10:00:00Z",
        "subject": "acme",
        "datacontenttype": "application/json",
        "data": data,
    }
    for key, value in overrides.items():
        if key.startswith("data_"):
            data[key[5:]] = value
        else:
            document[key] = value
    return document


def record(value: bytes | None, key: bytes | None = b"acme") -> Consumed:
    return Consumed(topic="t", partition=0, offset=7, key=key, value=value)


def test_the_contract_example_decodes() -> None:
    usage = decode(
        record(json.dumps(event(data_unit_price="0.0125", data_currency="USD")).encode())
    )
    assert usage == Usage(
        source="//messaging/whatsapp",
        event_id="msg-0001",
        company_id="acme",
        waba_id="waba-1",
        conversation_id="conv-9",
        category="marketing",
        status="delivered",
        units=1,
        unit_price=Decimal("0.0125"),
        currency="USD",
    )


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"{not json", "MALFORMED_JSON"),
        (b"\xff\xfe", "MALFORMED_JSON"),
        (None, "MALFORMED_JSON"),
        (b"[1, 2]", "SCHEMA_VIOLATION"),
        (json.dumps(event(type="message.recalled")).encode(), "UNKNOWN_TYPE"),
        (json.dumps(event(specversion="0.3")).encode(), "SCHEMA_VIOLATION"),
        (json.dumps(event(id="")).encode(), "SCHEMA_VIOLATION"),
        (json.dumps(event(data_units=0)).encode(), "SCHEMA_VIOLATION"),
        (json.dumps(event(data_units=1.5)).encode(), "SCHEMA_VIOLATION"),
        (json.dumps(event(data_units=True)).encode(), "SCHEMA_VIOLATION"),
        (json.dumps(event(data_status="pending")).encode(), "SCHEMA_VIOLATION"),
        (json.dumps(event(data_unit_price=0.05)).encode(), "SCHEMA_VIOLATION"),
        (json.dumps(event(data_unit_price="NaN")).encode(), "SCHEMA_VIOLATION"),
        (json.dumps(event(data_unit_price="0.00000001")).encode(), "SCHEMA_VIOLATION"),
        (json.dumps(event(data_currency="usd")).encode(), "SCHEMA_VIOLATION"),
        (json.dumps(event(data_company_id="bad id!")).encode(), "SCHEMA_VIOLATION"),
    ],
)
def test_bad_records_become_dead_letters_with_a_code(value: bytes | None, code: str) -> None:
    outcome = decode(record(value))
    assert isinstance(outcome, DeadLetter)
    assert outcome.code == code
    assert outcome.message


def test_the_key_must_be_the_company_id() -> None:
    outcome = decode(record(json.dumps(event()).encode(), key=b"globex"))
    assert isinstance(outcome, DeadLetter)
    assert outcome.code == "KEY_MISMATCH"


def test_failed_status_decodes_as_not_billable() -> None:
    usage = decode(record(json.dumps(event(data_status="failed")).encode()))
    assert isinstance(usage, Usage)
    assert not usage.billable


def test_checked_in_json_schema_matches_the_model() -> None:
    assert SCHEMA_FILE.read_text() == usage_event_json_schema(), (
        "regenerate: python -m schemas.usage_event > schemas/usage_event.v1.schema.json"
    )


def binary(document: dict[str, Any], **extra_headers: bytes) -> Consumed:
    """The CloudEvents Kafka binding's binary mode: attributes as ce_* headers, data alone."""
    headers = [(f"ce_{k}", str(v).encode()) for k, v in document.items()
               if k not in ("data", "datacontenttype")]  # fmt: skip
    headers += [(name.replace("_", "-"), value) for name, value in extra_headers.items()]
    return Consumed("t", 0, 7, b"acme", json.dumps(document["data"]).encode(), tuple(headers))


def test_binary_mode_records_decode_as_their_structured_event() -> None:
    structured = decode(record(json.dumps(event()).encode()))
    assert isinstance(structured, Usage)
    assert decode(binary(event(), content_type=b"application/json")) == structured
    assert decode(binary(event())) == structured, "content-type is optional"
    refused = decode(binary(event(), content_type=b"text/plain"))
    assert isinstance(refused, DeadLetter)
    assert refused.code == "SCHEMA_VIOLATION"
    untyped = event()
    del untyped["type"]
    assert getattr(decode(binary(untyped)), "code", None) == "UNKNOWN_TYPE"
