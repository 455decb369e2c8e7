"""The stored form of every event is a contract: declaring the event classes explicitly (so
readers dispatch on them and mypy checks their fields) must not change a topic or a payload.

The expected states below were encoded by the code before the declarations (when the library
built each class from its decorated method); an event written then must decode into the declared
class, and a new event must encode to the same bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent

from ledger_service.domain.adjustment import Adjustment
from ledger_service.domain.refund import Refund
from ledger_service.domain.topup import TopupRequest
from ledger_service.domain.wallet import Wallet

ID = UUID("12345678-1234-5678-1234-567812345678")
AT = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
TOPIC_PREFIXES = {
    "Wallet": "ledger_service.domain.wallet:Wallet.",
    "TopupRequest": "ledger_service.domain.topup:TopupRequest.",
    "Adjustment": "ledger_service.domain.adjustment:Adjustment.",
    "Refund": "ledger_service.domain.refund:Refund.",
}


CASES: list[tuple[type[Any], dict[str, Any], str]] = [
    (
        Wallet.Opened,
        {
            "originator_topic": "ledger_service.domain.wallet:Wallet",
            "company_id": "acme",
            "currency": "USD",
            "mode": "shared",
            "pool_sender_id": None,
            "postpaid_limit": D("100"),
            "included_quota": D("5"),
            "rate_card": {"marketing": D("0.05")},
            "actor": "op",
        },
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"originator_topic":"ledger_service.domain.wallet:Wallet","company_id":"acme","currency":"USD","mode":"shared","pool_sender_id":null,"postpaid_limit":{"_type_":"decimal_str","_data_":"100"},"included_quota":{"_type_":"decimal_str","_data_":"5"},"rate_card":{"marketing":{"_type_":"decimal_str","_data_":"0.05"}},"actor":"op"}',
    ),
    (
        Wallet.SenderLinked,
        {"waba_id": "w1", "actor": "op"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"waba_id":"w1","actor":"op"}',
    ),
    (
        Wallet.SenderUnlinked,
        {"waba_id": "w1", "actor": "op"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"waba_id":"w1","actor":"op"}',
    ),
    (
        Wallet.PostpaidLimitChanged,
        {"postpaid_limit": D("10"), "previous": D("5"), "actor": "op"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"postpaid_limit":{"_type_":"decimal_str","_data_":"10"},"previous":{"_type_":"decimal_str","_data_":"5"},"actor":"op"}',
    ),
    (
        Wallet.RateCardChanged,
        {"rate_card": {"utility": D("0.01")}, "actor": "op"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"rate_card":{"utility":{"_type_":"decimal_str","_data_":"0.01"}},"actor":"op"}',
    ),
    (
        Wallet.IncludedQuotaChanged,
        {"included_quota": D("7"), "actor": "op"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"included_quota":{"_type_":"decimal_str","_data_":"7"},"actor":"op"}',
    ),
    (
        Wallet.FailedUsageRecorded,
        {
            "reference": "s#1",
            "sender_id": "w1",
            "conversation_id": "c",
            "category": "utility",
            "units": 2,
            "actor": "ing",
        },
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"reference":"s#1","sender_id":"w1","conversation_id":"c","category":"utility","units":2,"actor":"ing"}',
    ),
    (
        Wallet.AlertSettingsChanged,
        {
            "low_balance_threshold": D("3"),
            "low_balance_percent": D("10"),
            "burn_limit_24h": None,
            "renotify": "once_per_cycle",
            "actor": "op",
        },
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"low_balance_threshold":{"_type_":"decimal_str","_data_":"3"},"low_balance_percent":{"_type_":"decimal_str","_data_":"10"},"burn_limit_24h":null,"renotify":"once_per_cycle","actor":"op","class_version":2}',
    ),
    (
        Wallet.AutoTopupChanged,
        {
            "enabled": True,
            "trigger_balance": D("1"),
            "amount": D("50"),
            "auto_approve": False,
            "actor": "op",
        },
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"enabled":true,"trigger_balance":{"_type_":"decimal_str","_data_":"1"},"amount":{"_type_":"decimal_str","_data_":"50"},"auto_approve":false,"actor":"op"}',
    ),
    (
        Wallet.SpendingCapsChanged,
        {"caps": {"marketing": {"units": 5, "amount": D("2")}}, "actor": "op"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"caps":{"marketing":{"units":5,"amount":{"_type_":"decimal_str","_data_":"2"}}},"actor":"op"}',
    ),
    (
        Wallet.CycleAnchorChanged,
        {
            "anchor": {"day": 1, "at": "00:00", "time_zone": "UTC"},
            "next_cycle_at": AT,
            "actor": "op",
        },
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"anchor":{"day":1,"at":"00:00","time_zone":"UTC"},"next_cycle_at":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"actor":"op"}',
    ),
    (
        Wallet.CycleStarted,
        {"cycle_start": AT, "next_cycle_at": AT, "opening_funded": D("4"), "actor": "cycles"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"cycle_start":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"next_cycle_at":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"opening_funded":{"_type_":"decimal_str","_data_":"4"},"actor":"cycles"}',
    ),
    (
        Wallet.AlertRaised,
        {
            "company_id": "acme",
            "alert": "low_balance_warning",
            "balance": D("1"),
            "available": D("2"),
            "threshold": D("3"),
            "category": None,
            "day": None,
            "measured": None,
        },
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"company_id":"acme","alert":"low_balance_warning","balance":{"_type_":"decimal_str","_data_":"1"},"available":{"_type_":"decimal_str","_data_":"2"},"threshold":{"_type_":"decimal_str","_data_":"3"},"category":null,"day":null,"measured":null}',
    ),
    (
        Wallet.TriggersRearmed,
        {"company_id": "acme", "triggers": ["below_zero"], "balance": D("1"), "available": D("2")},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"company_id":"acme","triggers":["below_zero"],"balance":{"_type_":"decimal_str","_data_":"1"},"available":{"_type_":"decimal_str","_data_":"2"}}',
    ),
    (
        Wallet.AutoTopupTriggered,
        {
            "company_id": "acme",
            "amount": D("50"),
            "trigger_balance": D("1"),
            "auto_approve": True,
            "balance": D("0.5"),
        },
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"company_id":"acme","amount":{"_type_":"decimal_str","_data_":"50"},"trigger_balance":{"_type_":"decimal_str","_data_":"1"},"auto_approve":true,"balance":{"_type_":"decimal_str","_data_":"0.5"}}',
    ),
    (
        TopupRequest.Requested,
        {
            "originator_topic": "ledger_service.domain.topup:TopupRequest",
            "company_id": "acme",
            "wallet_id": ID,
            "amount": D("50"),
            "currency": "USD",
            "note": "n",
            "actor": "op",
        },
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"originator_topic":"ledger_service.domain.topup:TopupRequest","company_id":"acme","wallet_id":{"_type_":"uuid_hex","_data_":"12345678123456781234567812345678"},"amount":{"_type_":"decimal_str","_data_":"50"},"currency":"USD","note":"n","actor":"op"}',
    ),
    (
        TopupRequest.Approved,
        {"actor": "op"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"actor":"op"}',
    ),
    (
        TopupRequest.Invoiced,
        {"invoice_number": "INV-1", "actor": "op"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"invoice_number":"INV-1","actor":"op"}',
    ),
    (
        TopupRequest.Rejected,
        {"reason": "r", "actor": "op"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"reason":"r","actor":"op"}',
    ),
    (
        TopupRequest.Cancelled,
        {"reason": "r", "actor": "op"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"reason":"r","actor":"op"}',
    ),
    (
        TopupRequest.Paid,
        {"payment_reference": "p1", "actor": "op"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"payment_reference":"p1","actor":"op"}',
    ),
    (
        TopupRequest.Completed,
        {"actor": "op"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"actor":"op"}',
    ),
    # Grants: pinned as first written (2026-11). Their money moves in Credited/Debited with
    # split keys "grant:<id>", pinned below.
    (
        Wallet.GrantIssued,
        {
            "grant_id": str(ID),
            "amount": D("25"),
            "priority": 10,
            "expires_at": AT,
            "reason": "welcome",
            "reference": "promo-1",
            "actor": "ops-a",
        },
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"grant_id":"12345678-1234-5678-1234-567812345678","amount":{"_type_":"decimal_str","_data_":"25"},"priority":10,"expires_at":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"reason":"welcome","reference":"promo-1","actor":"ops-a"}',
    ),
    (
        Wallet.GrantClosed,
        {
            "grant_id": str(ID),
            "status": "expired",
            "remainder": D("4.5"),
            "as_of": AT,
            "actor": "cycle-scheduler",
        },
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"grant_id":"12345678-1234-5678-1234-567812345678","status":"expired","remainder":{"_type_":"decimal_str","_data_":"4.5"},"as_of":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"actor":"cycle-scheduler"}',
    ),
    (
        Wallet.Debited,
        {
            "amount": D("3"),
            "split": {
                "included": D("1"),
                "prepaid": D("0"),
                "postpaid": D("0"),
                "overage": D("0"),
                f"grant:{ID}": D("2"),
            },
            "kind": "usage",
            "counter_account": "revenue:usage",
            "reference": "//wa#m1",
            "sender_id": "w1",
            "conversation_id": "c1",
            "category": "marketing",
            "units": 6,
            "unit_price": D("0.5"),
            "actor": "ingestion",
            "entry_hash": "h",
        },
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"amount":{"_type_":"decimal_str","_data_":"3"},"split":{"included":{"_type_":"decimal_str","_data_":"1"},"prepaid":{"_type_":"decimal_str","_data_":"0"},"postpaid":{"_type_":"decimal_str","_data_":"0"},"overage":{"_type_":"decimal_str","_data_":"0"},"grant:12345678-1234-5678-1234-567812345678":{"_type_":"decimal_str","_data_":"2"}},"kind":"usage","counter_account":"revenue:usage","reference":"//wa#m1","sender_id":"w1","conversation_id":"c1","category":"marketing","units":6,"unit_price":{"_type_":"decimal_str","_data_":"0.5"},"actor":"ingestion","entry_hash":"h"}',
    ),
    # Holds: pinned as first written (2026-11).
    (
        Wallet.HoldPlaced,
        {
            "hold_id": str(ID),
            "reference": "msg-1",
            "source": "//wa",
            "sender_id": "w1",
            "category": "marketing",
            "units": 2,
            "amount": D("0.1"),
            "expires_at": AT,
            "actor": "sender-svc",
        },
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"hold_id":"12345678-1234-5678-1234-567812345678","reference":"msg-1","source":"//wa","sender_id":"w1","category":"marketing","units":2,"amount":{"_type_":"decimal_str","_data_":"0.1"},"expires_at":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"actor":"sender-svc"}',
    ),
    (
        Wallet.HoldClosed,
        {
            "hold_id": str(ID),
            "reference": "msg-1",
            "status": "settled",
            "amount": D("0.1"),
            "as_of": AT,
            "actor": "ingestion",
        },
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"hold_id":"12345678-1234-5678-1234-567812345678","reference":"msg-1","status":"settled","amount":{"_type_":"decimal_str","_data_":"0.1"},"as_of":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"actor":"ingestion"}',
    ),
    # Adjustments and refunds: pinned as first written (2026-11), not re-encodings of older code.
    (
        Adjustment.Requested,
        {
            "originator_topic": "ledger_service.domain.adjustment:Adjustment",
            "company_id": "acme",
            "wallet_id": ID,
            "direction": "credit",
            "amount": D("20"),
            "bucket": "prepaid",
            "reason": "outage",
            "needs_approval": True,
            "actor": "ops-a",
        },
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"originator_topic":"ledger_service.domain.adjustment:Adjustment","company_id":"acme","wallet_id":{"_type_":"uuid_hex","_data_":"12345678123456781234567812345678"},"direction":"credit","amount":{"_type_":"decimal_str","_data_":"20"},"bucket":"prepaid","reason":"outage","needs_approval":true,"actor":"ops-a"}',
    ),
    (
        Adjustment.Approved,
        {"actor": "ops-b"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"actor":"ops-b"}',
    ),
    (
        Adjustment.Rejected,
        {"reason": "no", "actor": "ops-b"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"reason":"no","actor":"ops-b"}',
    ),
    (
        Adjustment.Applied,
        {"actor": "ops-b"},
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"actor":"ops-b"}',
    ),
    (
        Refund.Created,
        {
            "originator_topic": "ledger_service.domain.refund:Refund",
            "company_id": "acme",
            "wallet_id": ID,
            "usage_source": "//wa",
            "usage_id": "m1",
            "debit_version": 7,
            "amount": D("1.5"),
            "reason": "undelivered",
            "actor": "op",
        },
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"originator_topic":"ledger_service.domain.refund:Refund","company_id":"acme","wallet_id":{"_type_":"uuid_hex","_data_":"12345678123456781234567812345678"},"usage_source":"//wa","usage_id":"m1","debit_version":7,"amount":{"_type_":"decimal_str","_data_":"1.5"},"reason":"undelivered","actor":"op"}',
    ),
]


@pytest.fixture(scope="module")
def mapper() -> Any:
    return Application[UUID](env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper


@pytest.mark.parametrize(
    ("event_class", "fields", "state"), CASES, ids=lambda c: getattr(c, "__qualname__", "")
)
def test_topic_and_payload_are_unchanged(
    mapper: Any, event_class: type[Any], fields: dict[str, Any], state: str
) -> None:
    owner, name = event_class.__qualname__.split(".")
    version = 1 if "originator_topic" in fields else 2
    domain_event = event_class(originator_id=ID, originator_version=version, timestamp=AT, **fields)
    stored = mapper.to_stored_event(domain_event)
    assert stored.topic == f"{TOPIC_PREFIXES[owner]}{name}"
    assert stored.state.decode() == state
    written_before = StoredEvent(ID, version, stored.topic, state.encode())
    loaded = mapper.to_domain_event(written_before)
    assert type(loaded) is event_class
    assert loaded == domain_event


ALERT_SETTINGS_V1 = '{"timestamp":{"_type_":"datetime_iso","_data_":"2024-05-06T07:08:09.123456+00:00"},"low_balance_threshold":{"_type_":"decimal_str","_data_":"3"},"low_balance_percent":{"_type_":"decimal_str","_data_":"10"},"burn_limit_24h":null,"actor":"op"}'  # noqa: E501


def test_alert_settings_stored_before_renotify_load_as_per_crossing(mapper: Any) -> None:
    topic = f"{TOPIC_PREFIXES['Wallet']}AlertSettingsChanged"
    loaded = mapper.to_domain_event(StoredEvent(ID, 2, topic, ALERT_SETTINGS_V1.encode()))
    assert type(loaded) is Wallet.AlertSettingsChanged
    assert loaded.renotify == "per_crossing"
    assert (loaded.low_balance_threshold, loaded.burn_limit_24h) == (D("3"), None)
