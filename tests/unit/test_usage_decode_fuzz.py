"""Hostile usage records: the decoder, fed arbitrary bytes, keys and headers and near-valid
CloudEvents, only ever answers a ``Usage`` or a dead letter with a known code, and accepts no
record the published contract (``schemas/usage_event.v1.schema.json``) forbids."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_service.domain.usage import Usage
from ledger_service.ingestion import usage_struct
from ledger_service.ingestion.decode import decode, decode_stepwise
from ledger_service.ingestion.records import Consumed, DeadLetter

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "schemas" / "usage_event.v1.schema.json").read_text()
)
CONTRACT = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
CODES = {"MALFORMED_JSON", "SCHEMA_VIOLATION", "UNKNOWN_TYPE", "KEY_MISMATCH"}
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
headers = st.lists(st.tuples(st.text(max_size=12), st.binary(max_size=24)), max_size=4)
keys = st.none() | st.binary(max_size=24) | st.just(b"acme")


def valid_event() -> dict[str, Any]:
    return {
        "specversion": "1.0", "id": "msg-1", "source": "//messaging/whatsapp",
        "type": "message.sent", "time": "2026-11-22T10:00:00Z", "subject": "acme",
        "datacontenttype": "application/json",
        "data": {"company_id": "acme", "waba_id": "waba-1", "conversation_id": "c-1",
                 "category": "marketing", "status": "delivered", "units": 2,
                 "unit_price": "0.0125", "currency": "USD"},
    }  # fmt: skip


# Near-valid: the valid event with one to three of its fields replaced, removed or joined by
# something else, at the top level or in `data`, including the values a sloppy producer sends
# (numbers as strings, floats, negative or huge units, padded ids, other time formats).
TRICKY = [
    None, "", " ", "1", "2.5", 0, -1, 10_001, 2**63, 1.5, 1e300, True,
    "acme\n", " acme", "ACME", "a" * 65, "x" * 300, "0.01", "-0.01", "1e-3", "0.12345678",
    "2026-11-22", "1700000000", 1_700_000_000, "2026-11-22T10:00:00", "not a time",
    "failed", "read", "message.sent", "1.0", "EUR", "usd", [], {}, ["acme"],
    "2026-11-22T10:00:00+05:30", "2026-11-22T10:00:00.5Z", "2026-11-22 10:00:00Z",
]  # fmt: skip
tricky = st.sampled_from(TRICKY)
PATHS = [
    ("specversion",), ("id",), ("source",), ("type",), ("time",), ("subject",),
    ("datacontenttype",), ("data",), ("data", "company_id"), ("data", "waba_id"),
    ("data", "conversation_id"), ("data", "category"), ("data", "status"), ("data", "units"),
    ("data", "unit_price"), ("data", "currency"), ("data", "extra"), ("extra",),
]  # fmt: skip
paths = st.sampled_from(PATHS)
edits = st.lists(st.tuples(paths, st.one_of(tricky, json_values, st.just(...))), max_size=3)


def edited(changes: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    document = valid_event()
    for path, value in changes:
        parent: Any = document
        for part in path[:-1]:
            if not isinstance(parent.get(part), dict):
                parent[part] = {}
            parent = parent[part]
        if value is ...:
            parent.pop(path[-1], None)  # removed
        else:
            parent[path[-1]] = value
    return document


def as_structured(record: Consumed, data: Any) -> Any:
    """What a binary-mode record stands for, rebuilt here by the CloudEvents Kafka binding:
    ``ce_*`` headers as attributes, ``content-type`` as ``datacontenttype``."""
    names = [name for name, _ in record.headers]
    if "ce_specversion" not in names:
        return data
    document: dict[str, Any] = {"data": data}
    for name, value in record.headers:
        if name.startswith("ce_"):
            document[name[3:]] = value.decode(errors="replace")
        elif name.lower() == "content-type":
            document["datacontenttype"] = value.decode(errors="replace").split(";")[0].strip()
    return document


def check(record: Consumed, document: Any = None) -> Usage | DeadLetter:
    decided = decode(record)  # raising anything here is the failure this test looks for
    # The fast path (msgspec, ``usage_struct``) decides every record as the stepwise one does.
    assert decided == decode_stepwise(record)
    document = as_structured(record, document)
    if isinstance(decided, DeadLetter):
        assert decided.code in CODES, decided
        assert decided.message, decided
        assert decided.record is record
        return decided
    assert isinstance(decided, Usage)
    assert document is not None, "only a JSON CloudEvent can be a usage event"
    errors = sorted(CONTRACT.iter_errors(document), key=str)
    assert not errors, f"accepted what the contract forbids: {errors[0].message} in {document}"
    data = document["data"]
    assert record.key in (None, data["company_id"].encode()), "the key is the company"
    assert (decided.company_id, decided.waba_id, decided.units) == (
        data["company_id"], data["waba_id"], data.get("units", 1)
    )  # fmt: skip
    price = data.get("unit_price")
    assert decided.unit_price == (None if price is None else Decimal(price))
    return decided


@FUZZ
@given(value=st.none() | st.binary(max_size=200), key=keys, record_headers=headers)
def test_arbitrary_bytes_are_dead_letters(
    value: bytes | None, key: bytes | None, record_headers: list[tuple[str, bytes]]
) -> None:
    record = Consumed("t", 0, 1, key, value, tuple(record_headers))
    try:
        document = None if value is None else json.loads(value)
    except ValueError:
        document = None
    check(record, document)


@FUZZ
@given(document=json_values, key=keys)
def test_arbitrary_json_is_decided(document: Any, key: bytes | None) -> None:
    check(Consumed("t", 0, 1, key, json.dumps(document).encode()), document)


@FUZZ
@given(changes=edits, key=keys, record_headers=headers)
def test_near_valid_cloudevents_are_accepted_only_within_the_contract(
    changes: list[tuple[tuple[str, ...], Any]],
    key: bytes | None,
    record_headers: list[tuple[str, bytes]],
) -> None:
    document = edited(changes)
    value = json.dumps(document).encode()
    check(Consumed("t", 0, 1, key, value, tuple(record_headers)), document)


def test_every_single_edit_of_every_field_is_decided_within_the_contract() -> None:
    """Each tricky value in each place, and each field removed: all of them, not a sample."""
    accepted = 0
    for path in PATHS:
        for value in [*TRICKY, ...]:
            document = edited([(path, value)])
            decided = check(Consumed("t", 0, 1, b"acme", json.dumps(document).encode()), document)
            accepted += isinstance(decided, Usage)
    assert accepted > 50, "the edits must leave some events valid, or this proves little"


@FUZZ
@given(
    changes=edits,
    key=keys,
    content_type=st.sampled_from(
        [None, b"application/json", b"application/json; charset=utf-8", b"text/plain", b"\xff"]
    ),
)
def test_binary_mode_records_are_decided_by_the_same_contract(
    changes: list[tuple[tuple[str, ...], Any]], key: bytes | None, content_type: bytes | None
) -> None:
    """The same near-valid events in CloudEvents binary mode: attributes as ``ce_*`` headers
    (a non-string attribute becomes its JSON text, as a header must be bytes), data as value."""
    document = edited(changes)
    headers = [
        (f"ce_{name}", (value if isinstance(value, str) else json.dumps(value)).encode())
        for name, value in document.items() if name not in ("data", "datacontenttype")
    ]  # fmt: skip
    if content_type is not None:
        headers.append(("content-type", content_type))
    if "ce_specversion" not in {name for name, _ in headers}:
        headers.append(("ce_specversion", b"1.0"))
    value = json.dumps(document.get("data")).encode()
    check(Consumed("t", 0, 1, key, value, tuple(headers)), document.get("data"))


def test_the_valid_event_is_accepted_so_the_fuzz_starts_from_the_contract() -> None:
    document = valid_event()
    assert not list(CONTRACT.iter_errors(document))
    assert isinstance(check(Consumed("t", 0, 1, b"acme", json.dumps(document).encode()),
                            document), Usage)  # fmt: skip


VALID = json.dumps(valid_event())


@pytest.mark.parametrize(
    "value",
    [
        VALID.encode(),
        VALID.encode("utf-16"),  # json.loads detects UTF-16 and 32; pydantic reads UTF-8 only
        VALID.encode("utf-32"),
        b"\xef\xbb\xbf" + VALID.encode(),  # a UTF-8 byte order mark
        b"  \n" + VALID.encode() + b"\n\t ",
        VALID.replace('"units": 2', '"units": NaN').encode(),
        VALID.replace('"units": 2', '"units": 2.0').encode(),
        VALID.replace('"units": 2', '"units": true').encode(),
        VALID.replace('"units": 2', '"units": 2, "units": 3').encode(),  # the last one counts
        VALID.replace('"c-1"', '"c-\\ud800"').encode(),  # a lone surrogate
        VALID.replace('"msg-1"', '"msg-\\u00e9"').encode(),
        VALID.encode() + b" {}",
        VALID.encode()[:-1],
    ],
)
def test_the_fast_path_and_the_stepwise_path_decide_alike(value: bytes) -> None:
    record = Consumed("t", 0, 1, b"acme", value)
    assert decode(record) == decode_stepwise(record)


# Times of the contract's shape, drawn digit by digit so that some do not exist (hour 24,
# second 60, 30 February, offset minutes 60): the msgspec fast path checks times itself.
two = st.integers(0, 99).map(lambda n: f"{n:02d}")
times = st.builds(
    "{}-{}-{}{}{}:{}:{}{}{}".format,
    st.integers(0, 9999).map(lambda n: f"{n:04d}"),
    two,
    two,
    st.sampled_from(["T", "t", " "]),
    two,
    two,
    two,
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,9}", fullmatch=True)),
    st.one_of(
        st.sampled_from(["Z", "z", ""]),
        st.builds("{}{}:{}".format, st.sampled_from("+-"), two, two),
    ),
)


@settings(max_examples=1000, deadline=None)
@given(time=times)
def test_the_fast_path_decides_times_as_the_contract_does(time: str) -> None:
    document = valid_event()
    document["time"] = time
    record = Consumed("t", 0, 1, b"acme", json.dumps(document).encode())
    assert decode(record) == decode_stepwise(record)


def test_the_fast_path_takes_the_usual_event() -> None:
    """The fast path must accept what producers send, or it is a slower path that proves
    nothing: the valid event, with and without its optional fields and with an offset."""
    document = valid_event()
    assert usage_struct.decoded(json.dumps(document).encode()) is not None
    document["time"] = "2026-11-22T10:00:00.123456+05:30"
    for optional in ("time", "subject", "datacontenttype"):
        document.pop(optional)
        assert usage_struct.decoded(json.dumps(document).encode()) is not None
