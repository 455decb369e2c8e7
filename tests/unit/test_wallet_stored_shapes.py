"""What a wallet stored before its policies became typed values still loads, and is still
what it stores: the same event topics and payloads; its old snapshots load, upcast.

``data/wallet_v2_stored.json`` holds the stored events (topic and JSON state) and two snapshots
of one wallet that uses every policy, written by the code of commit 2b11fe3 (``Wallet`` of
class_version 2 with its policy state in plain dicts, every event method in ``wallet.py``) with
the library's clock fixed at each step. ``every_policy_in_use`` below runs the same commands.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from ledger_service.domain import accounts
from ledger_service.domain.policies import (
    AlertSettings,
    AutoTopup,
    CycleAnchor,
    SpendingCap,
    check_cycle_anchor,
)
from ledger_service.domain.triggers import BurnWindow, SpendingDay, Tally
from ledger_service.domain.wallet import CreditBucket, CreditKind, PoolMode, Wallet
from ledger_service.domain.wallet_transfers import sent_today
from ledger_service.service.ledger import LedgerApplication
from tests.fakes import InMemoryLedger

D = Decimal
FIXTURE = Path(__file__).parent / "data" / "wallet_v2_stored.json"
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def stored() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


@pytest.fixture
def ledger() -> Iterator[LedgerApplication]:
    app = InMemoryLedger()
    yield app
    app.close()


def as_stored(stored: dict[str, Any], record: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        originator_id=UUID(stored["originator_id"]),
        originator_version=record["originator_version"],
        topic=record["topic"],
        state=record["state"].encode(),
    )


def decoded_events(stored: dict[str, Any], ledger: LedgerApplication) -> list[Any]:
    return [ledger.mapper.to_domain_event(as_stored(stored, r)) for r in stored["events"]]


def replayed(events: Sequence[Any]) -> Wallet:
    wallet: Any = None
    for event in events:
        wallet = event.mutate(wallet)
    assert isinstance(wallet, Wallet)
    return wallet


def without_timestamp(state: str) -> list[tuple[str, Any]]:
    """The stored JSON object as its (key, value) pairs in stored order, less its timestamp."""
    pairs: list[tuple[str, Any]] = json.loads(state, object_pairs_hook=list)
    return [(key, value) for key, value in pairs if key != "timestamp"]


ALERT_SETTINGS_V2 = {"renotify": "per_crossing", "class_version": 2}
"""What version 2 of ``AlertSettingsChanged`` adds to a version 1 payload: the only change."""


def in_current_version(topic: str, state: str) -> dict[str, Any]:
    """A payload stored before as the current event classes store it."""
    payload: dict[str, Any] = json.loads(state)
    if topic.endswith(":Wallet.AlertSettingsChanged"):
        return payload | ALERT_SETTINGS_V2
    return payload


def test_events_stored_before_decode_to_wallet_events_and_encode_the_same(
    stored: dict[str, Any], ledger: LedgerApplication
) -> None:
    events = decoded_events(stored, ledger)
    for record, event in zip(stored["events"], events, strict=True):
        module, _, qualname = record["topic"].partition(":")
        assert (type(event).__module__, type(event).__qualname__) == (module, qualname)
        assert get_topic(type(event)) == record["topic"]
        state = ledger.mapper.to_stored_event(event).state.decode()
        if record["topic"].endswith(":Wallet.AlertSettingsChanged"):
            assert json.loads(state) == in_current_version(record["topic"], record["state"])
        else:
            assert state == record["state"], "same bytes"
    assert len({r["topic"] for r in stored["events"]}) == 17
    wallet = replayed(events)
    assert (wallet.included, wallet.prepaid, wallet.balance) == (D(120), D(514), D(634))
    assert wallet.alert_settings == AlertSettings(None, D(40), D(20))
    assert wallet.auto_topup == AutoTopup(False, D(0), D(0), False)


def every_policy_in_use() -> Wallet:
    """The commands that wrote the fixture's events, with its times passed in (``at``)."""
    wallet = Wallet.open(
        company_id="acme",
        currency="USD",
        mode=PoolMode.SHARED,
        postpaid_limit=D("50"),
        included_quota=D("100"),
        rate_card={"marketing": D("1"), "utility": D("2")},
        actor="op",
        at=T0,
    )
    wallet.link_sender("w1", actor="op")
    wallet.link_sender("w2", actor="op")
    credit(wallet, "100", "quota", CreditBucket.INCLUDED, CreditKind.GRANT)
    credit(wallet, "100", "t1")
    wallet.change_cycle_anchor(check_cycle_anchor(15, "06:30", "Europe/Berlin"), actor="op")
    wallet.configure_alerts(
        low_balance_threshold=None,
        low_balance_percent=D(40),
        burn_limit_24h=D("20"),
        actor="op",
    )
    wallet.configure_auto_topup(
        enabled=True, trigger_balance=D("30"), amount=D("200"), auto_approve=True, actor="op"
    )
    wallet.change_spending_caps({"marketing": {"units": 3}, "utility": {"amount": "5"}}, actor="op")
    use_until_the_first_snapshot(wallet)
    the_rest_after_it(wallet)
    return wallet


def credit(
    wallet: Wallet,
    amount: str,
    reference: str,
    bucket: CreditBucket = CreditBucket.PREPAID,
    kind: CreditKind = CreditKind.TOPUP,
) -> None:
    counter = accounts.PROMOTIONS if kind is CreditKind.GRANT else accounts.CASH_CLEARING
    wallet.credit(
        D(amount),
        bucket=bucket,
        kind=kind,
        counter_account=counter,
        reference=reference,
        actor="op",
    )


def use(wallet: Wallet, at: datetime, ref: str, amount: str, units: int = 1, cat: str = "") -> None:
    wallet.record_usage(
        D(amount),
        usage_reference=ref,
        sender_id="w1",
        conversation_id="c",
        category=cat or "marketing",
        units=units,
        unit_price=D(amount) / units,
        actor="ingestion",
        at=at,
    )


def use_until_the_first_snapshot(wallet: Wallet) -> None:
    for n in range(4):
        use(wallet, T0, f"m{n}", "1")
    use(wallet, T0, "u1", "6", 3, "utility")
    later = T0 + timedelta(hours=2)
    use(wallet, later, "m5", "20", 20)
    use(wallet, later, "m6", "100", 100)
    wallet.record_failed_usage(
        usage_reference="f1",
        sender_id="w1",
        conversation_id="c",
        category="marketing",
        units=1,
        actor="ingestion",
    )
    use(wallet, later, "m7", "45", 45)


def the_rest_after_it(wallet: Wallet) -> None:
    use(wallet, T0 + timedelta(days=1, hours=3), "m8", "1")
    credit(wallet, "500", "t2")
    wallet.send_transfer(D("10"), transfer_reference="tr1", actor="op")
    wallet.change_postpaid_limit(D("75"), actor="op")
    wallet.change_rate_card({"marketing": D("1.5"), "utility": D("2")}, actor="op")
    wallet.change_included_quota(D("120"), actor="op")
    wallet.unlink_sender("w2", actor="op")
    assert wallet.start_due_cycles(datetime(2027, 1, 20, tzinfo=UTC), actor="cycles") == 3
    wallet.configure_auto_topup(
        enabled=False, trigger_balance=D("0"), amount=D("0"), auto_approve=False, actor="op"
    )


def test_the_same_commands_store_the_same_topics_and_payloads(
    stored: dict[str, Any], ledger: LedgerApplication
) -> None:
    # Only opening and usage take their time from the test; the other commands' events carry
    # the library's clock, so timestamps are left out of the comparison.
    new = [ledger.mapper.to_stored_event(e) for e in every_policy_in_use().collect_events()]
    assert [s.topic for s in new] == [r["topic"] for r in stored["events"]]
    for event, record in zip(new, stored["events"], strict=True):
        ours, before = event.state.decode(), record["state"]
        if record["topic"].endswith(":Wallet.AlertSettingsChanged"):
            assert json.loads(ours) | {"timestamp": None} == in_current_version(
                record["topic"], before
            ) | {"timestamp": None}
        else:
            assert without_timestamp(ours) == without_timestamp(before), "same keys, same order"


TRANSFER_DAY = ("transfer_day", "transfer_day_ends_at", "transferred_today")
"""What a snapshot from before version 8 cannot know: the transfers sent on its last day."""


def same_but_for_the_transfer_day(loaded: Wallet, replay: Wallet, at: datetime) -> None:
    """Equal to a replay but for ``TRANSFER_DAY``, which counts nothing on ``at`` either way
    once the day of the wallet's last transfer is over."""
    assert {k: v for k, v in vars(loaded).items() if k not in TRANSFER_DAY} == {
        k: v for k, v in vars(replay).items() if k not in TRANSFER_DAY
    }
    assert (loaded.transfer_day, loaded.transferred_today) == ("", D(0))
    assert sent_today(loaded, at) == sent_today(replay, at) == D(0)


def test_old_snapshots_load_as_typed_values_equal_to_a_replay(
    stored: dict[str, Any], ledger: LedgerApplication
) -> None:
    events = decoded_events(stored, ledger)
    for record in stored["snapshots"]:
        snapshot = ledger.mapper.to_domain_event(as_stored(stored, record))
        loaded = snapshot.mutate(None)
        replay = replayed(events[: record["originator_version"]])
        assert isinstance(loaded, Wallet)
        same_but_for_the_transfer_day(loaded, replay, replay.modified_on)
    first = ledger.mapper.to_domain_event(as_stored(stored, stored["snapshots"][0])).mutate(None)
    assert isinstance(first, Wallet)
    assert first.cycle_anchor == CycleAnchor(15, "06:30", "Europe/Berlin")
    assert first.alert_settings == AlertSettings(None, D(40), D(20))
    assert first.auto_topup == AutoTopup(True, D(30), D(200), True)
    assert first.spending_caps == {
        "marketing": SpendingCap(units=3),
        "utility": SpendingCap(amount=D(5)),
    }
    assert first.triggered == ["auto_topup", "low_balance_warning", "rapid_burn"]
    assert first.blocked == {"marketing": "2026-11-22", "utility": "2026-11-22"}
    assert first.spend_day == SpendingDay(
        "2026-11-22",
        datetime(2026, 11, 22, 23, 0, tzinfo=UTC),
        {"marketing": Tally(169, D(169)), "utility": Tally(3, D(6))},
    )
    assert first.burn_window == BurnWindow({498706: D(10), 498708: D(165)})


def test_an_old_snapshot_in_the_store_loads_and_the_wallet_carries_on(
    stored: dict[str, Any], ledger: LedgerApplication
) -> None:
    # Only the events after the snapshot are in the store: the wallet can only load from it.
    snapshot = stored["snapshots"][0]
    assert ledger.snapshots is not None
    ledger.snapshots.recorder.insert_events([as_stored(stored, snapshot)])
    after = [
        r for r in stored["events"] if r["originator_version"] > snapshot["originator_version"]
    ]
    ledger.recorder.insert_events([as_stored(stored, r) for r in after])
    wallet = ledger.get_wallet("acme")
    # The transfer came after the snapshot: its day is counted as a replay counts it.
    assert vars(wallet) == vars(replayed(decoded_events(stored, ledger)))
    use(wallet, datetime(2027, 1, 21, 9, 0, tzinfo=UTC), "m9", "3", 3)
    assert wallet.spend_day.categories == {"marketing": Tally(3, D(3))}
    # Its snapshots are now of version 9 (with grants and holds, none here, the service's tax
    # rate, the warnings of this cycle, no transfer limit and no merge), and hold the typed
    # values.
    again = ledger.mapper.to_domain_event(ledger.mapper.to_stored_event(Snapshot.take(wallet)))
    assert again.state["class_version"] == 9
    assert again.state["merged_into"] is None
    assert (again.state["grants"], again.state["holds"]) == ({}, {})
    assert again.state["tax_percent"] is None
    assert vars(again.mutate(None)) == {**vars(wallet), "_pending_events": []}


def test_a_snapshot_from_before_policies_loads_with_the_default_policies(
    stored: dict[str, Any], ledger: LedgerApplication
) -> None:
    v2 = ledger.mapper.to_domain_event(as_stored(stored, stored["snapshots"][0]))
    policy_keys = {
        "cycle_anchor",
        "cycle_start",
        "cycle_funded",
        "low_balance_threshold",
        "low_balance_percent",
        "burn_limit_24h",
        "auto_topup",
        "spending_caps",
        "triggered",
        "blocked",
        "spend_day",
        "burn_hours",
        "class_version",
    }
    v1_state = {k: v for k, v in v2.state.items() if k not in policy_keys}
    v1 = Snapshot(
        originator_id=v2.originator_id,
        originator_version=v2.originator_version,
        timestamp=v2.timestamp,
        topic=v2.topic,
        state=v1_state,
    )
    wallet = v1.mutate(None)
    assert isinstance(wallet, Wallet)
    assert wallet.cycle_anchor == CycleAnchor()
    assert wallet.cycle_start == datetime(2026, 11, 1, tzinfo=UTC)
    assert wallet.cycle_funded == D(25)
    assert (wallet.alert_settings, wallet.auto_topup) == (AlertSettings(), AutoTopup())
    assert (wallet.spending_caps, wallet.triggered, wallet.blocked) == ({}, [], {})
    assert (wallet.spend_day, wallet.burn_window) == (SpendingDay(), BurnWindow())
