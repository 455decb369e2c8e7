"""Alerts, notifications, billing cycles and auto top-ups on a real PostgreSQL and broker."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import httpx
import psycopg
import pytest
import structlog.testing
from aiokafka import AIOKafkaProducer

from ledger_service.audit.replay import replay
from ledger_service.audit.verify import read_model_snapshot, verify
from ledger_service.bootstrap import (
    Container,
    bootstrap,
    build_auto_topup,
    build_ledger,
    build_projector,
    build_relay,
    connector,
)
from ledger_service.config import Settings
from ledger_service.domain.ids import wallet_id
from ledger_service.domain.usage import Usage
from ledger_service.domain.wallet import Wallet
from ledger_service.ingestion.topics import ensure_topics
from ledger_service.reactions.cycles import run_cycles, schedule_cycles
from ledger_service.reactions.notifications import NotificationRelay
from ledger_service.service.ledger import LedgerApplication
from projections.tables import ReadModelTables
from tests.conftest import Tokens
from tests.integration.ingestion_support import (
    ingestion_settings,
    new_topics,
    open_company,
    produce,
    read_all,
    running_consumer,
    usage_event,
    wait_until_counted,
)

pytestmark = pytest.mark.integration
D = Decimal


def alert_names(ledger: LedgerApplication, company: str) -> list[str]:
    wallet = cast(Wallet, ledger.repository.get(wallet_id(company)))
    names = []
    for event in ledger.events.get(wallet.id):  # type: ignore[attr-defined]
        kind = type(event).__name__
        if kind == "AlertRaised":
            names.append(event.alert)
        elif kind == "TriggersRearmed":
            names.append("rearmed:" + ",".join(event.triggers))
    return names


async def relay_all(relay: NotificationRelay, kafka: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, enable_idempotence=False)
    await producer.start()
    try:
        while await relay.relay_once(producer):
            pass
    finally:
        await producer.stop()


def reactions_container(database_url: str, kafka: str, topic: str) -> Container:
    settings = Settings(
        environment="test",
        database_url=database_url,
        kafka_bootstrap=kafka,
        notifications_topic=topic,
        db_pool_size=4,
    )
    return bootstrap(settings, with_broker=True)


async def test_alerts_fire_once_per_crossing_under_duplicates_and_publish_stable_ids(
    fresh_database_url: str, kafka_bootstrap: str
) -> None:
    """Redelivered and duplicated usage raises each alert once; the relay publishes each once
    with a stable id, a crash between publishing and saving its position re-sends the same ids,
    and a read-model replay re-sends nothing."""
    topics = await new_topics(kafka_bootstrap)
    notifications = f"notifications-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, {notifications: 1})
    settings = ingestion_settings(fresh_database_url, kafka_bootstrap, topics)
    company = "alerting"
    events = [
        usage_event(company, "s1" if i % 2 else "s2", event_id=f"m{i}") for i in range(160)
    ]  # 160 x 0.5 = 80 from prepaid 100: still above zero at 20 (low balance on the way)
    events += [usage_event(company, "s1", event_id=f"x{i}", units=3) for i in range(40)]
    # 40 x 1.5 = 60 more: balance -40, below zero and past the credit limit of 30 (overage 10).
    async with running_consumer(settings) as running:
        ledger = running.container.ledger
        open_company(ledger, company, ["s1", "s2"], prepaid="100", limit="30")
        await produce(kafka_bootstrap, topics.usage, events)
        await produce(kafka_bootstrap, topics.usage, events[::3])  # published again, verbatim
        await wait_until_counted(len(events) + len(events[::3]), running)
        assert running.total("duplicates") == len(events[::3])
        # Redelivery: the consumer forgets its positions and is handed every record again.
        ledger.forget_consumer_positions(f"kafka:{topics.usage}:")
    async with running_consumer(settings) as running:
        ledger = running.container.ledger
        await wait_until_counted(len(events) + len(events[::3]), running)
        assert running.total("duplicates") == len(events) + len(events[::3])
    ledger = build_ledger(settings, fresh_database_url)
    try:
        wallet = ledger.get_wallet(company)
        assert wallet.balance == D("-40")  # 100 - 80 - 60
        assert alert_names(ledger, company) == [
            "low_balance_warning",
            "balance_below_zero",
            "credit_limit_exceeded",
        ]
    finally:
        ledger.close()

    container = reactions_container(fresh_database_url, kafka_bootstrap, notifications)
    try:
        relay = build_relay(container)
        done = relay.follower.done
        relay.follower.done = _crash_once(done)  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            await relay_all(relay, kafka_bootstrap)
        await relay_all(relay, kafka_bootstrap)  # the same batch again: same ids
        records = await read_all(kafka_bootstrap, notifications, expected=6)
        assert len(records) == 6
        published = [json.loads(r.value) for r in records]
        ids = {p["id"] for p in published}
        assert len(ids) == 3
        assert {p["type"] for p in published} == {
            "ledger.alert.low_balance_warning",
            "ledger.alert.balance_below_zero",
            "ledger.alert.credit_limit_exceeded",
        }
        for message in published:
            assert message["subject"] == company
            assert message["id"].startswith(str(wallet_id(company)) + ":")
            assert message["data"]["company_id"] == company
        assert {r.key for r in records} == {company.encode()}

        # Replaying the read models rebuilds rm_alerts but re-sends nothing.
        projector = build_projector(container)
        projector.catch_up()
        projector.close()
        before = _alerts_rows(fresh_database_url)
        replay(container.ledger, connector(container), live_schema="public")
        assert _alerts_rows(fresh_database_url) == before
        with psycopg.connect(fresh_database_url) as conn:
            report = verify(container.ledger, read_model_snapshot(conn, "public"))
            assert report.ok, report.problems
        assert [row[1] for row in before] == [
            "low_balance_warning",
            "balance_below_zero",
            "credit_limit_exceeded",
        ]
        await relay_all(build_relay(container), kafka_bootstrap)
        assert len(await read_all(kafka_bootstrap, notifications, expected=7, timeout_s=3)) == 6

        # Recovery re-arms and is published as balance_recovered.
        container.ledger.credit_wallet(
            company_id=company, amount="200", kind="adjustment", reference="fix", actor="op",
            idempotency_key="recover",
        )  # fmt: skip
        await relay_all(build_relay(container), kafka_bootstrap)
        records = await read_all(kafka_bootstrap, notifications, expected=7)
        last = json.loads(records[-1].value)
        assert last["type"] == "ledger.alert.balance_recovered"
        assert last["data"]["recovered"] == [
            "balance_below_zero",
            "credit_limit_exceeded",
            "low_balance_warning",
        ]
    finally:
        container.close()


def _crash_once(done: Any) -> Any:
    calls = {"n": 0}

    def crashing(batch: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("crash after publishing, before saving the position")
        done(batch)

    return crashing


def _alerts_rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT position, alert, detail, occurred_at FROM rm_alerts ORDER BY position"
        ).fetchall()


# -- billing cycles -------------------------------------------------------------------------


@pytest.fixture
def cycle_companies(pg_ledger: LedgerApplication) -> list[str]:
    prefix = uuid.uuid4().hex[:8]
    companies = [f"cyc-{prefix}-{i}" for i in range(4)]
    for company in companies:
        open_company(pg_ledger, company, [f"{company}-s"], included="100")
        pg_ledger.apply_usage(_usage(company, f"{company}-s", "u0"))
    return companies


def _usage(company: str, sender: str, event_id: str) -> Usage:
    return Usage(
        source="//t", event_id=f"{company}-{event_id}", company_id=company, waba_id=sender,
        conversation_id="c", category="marketing", status="delivered", units=2,
    )  # fmt: skip


def _grants(ledger: LedgerApplication, company: str) -> list[tuple[str, str, Decimal]]:
    """(kind, reference, amount) of every included-quota movement of the wallet."""
    moves = []
    for event in ledger.events.get(wallet_id(company)):  # type: ignore[attr-defined]
        if type(event).__name__ in ("Credited", "Debited") and event.kind in ("grant", "expiry"):
            moves.append((event.kind, event.reference, event.amount))
    return moves


def test_cycles_start_once_under_double_concurrent_and_crashed_runs_and_catch_up(
    pg_ledger: LedgerApplication, api_settings: Settings, cycle_companies: list[str]
) -> None:
    ids = [wallet_id(c) for c in cycle_companies]
    start = pg_ledger.get_wallet(cycle_companies[0]).cycle_start
    now = start + timedelta(days=95)  # three boundaries passed: two cycles were missed

    def crashing_ids() -> Iterator[UUID]:
        yield ids[0]
        raise RuntimeError("scheduler crashed after one wallet")

    with pytest.raises(RuntimeError):
        pg_ledger.start_due_cycles(crashing_ids(), now=now, actor="cycles")

    # Two schedulers (two processes' worth of application instances) race over every wallet.
    other = build_ledger(api_settings, cast(str, api_settings.database_url))
    counts: list[int] = []
    try:
        runners = [
            threading.Thread(
                target=lambda app=app: counts.append(app.start_due_cycles(ids, now=now, actor="x"))
            )
            for app in (pg_ledger, other)
        ]
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join()
    finally:
        other.close()
    assert sum(counts) == 3 * (len(ids) - 1)
    assert pg_ledger.start_due_cycles(ids, now=now, actor="again") == 0
    for company in cycle_companies:
        moves = _grants(pg_ledger, company)
        boundaries = [ref for kind, ref, _ in moves if kind == "grant"][1:]
        assert len(boundaries) == 3 == len(set(boundaries)), moves
        assert boundaries == sorted(boundaries)  # oldest first
        expired = [amount for kind, _, amount in moves if kind == "expiry"]
        assert expired == [D("99"), D("100"), D("100")]  # 1 was used in the first cycle
        wallet = pg_ledger.get_wallet(company)
        assert wallet.included == D("100")
        assert wallet.cycle_start <= now < wallet.next_cycle_at


def test_cycles_replay_equal_and_verify(fresh_database_url: str) -> None:
    """Expiries and grants are ordinary double-entry movements: the books balance, verify
    passes and a replay rebuilds exactly what the live projection built."""
    settings = Settings(environment="test", database_url=fresh_database_url, db_pool_size=2)
    container = bootstrap(settings, database_url=fresh_database_url)
    ledger = container.ledger
    try:
        open_company(ledger, "cyc", ["cyc-s"], included="100", prepaid="5")
        ledger.apply_usage(_usage("cyc", "cyc-s", "u1"))
        start = ledger.get_wallet("cyc").cycle_start
        assert ledger.start_due_cycles(
            [wallet_id("cyc")], now=start + timedelta(days=70), actor="t"
        )
        projector = build_projector(container)
        projector.catch_up()
        projector.close()
        with psycopg.connect(fresh_database_url) as conn:
            live = conn.execute("SELECT * FROM rm_wallet_balances ORDER BY wallet_id").fetchall()
            entries = conn.execute("SELECT * FROM rm_ledger_entries ORDER BY position").fetchall()
        replay(ledger, connector(container), live_schema="public")
        with psycopg.connect(fresh_database_url) as conn:
            assert (
                conn.execute("SELECT * FROM rm_wallet_balances ORDER BY wallet_id").fetchall()
                == live
            )
            assert (
                conn.execute("SELECT * FROM rm_ledger_entries ORDER BY position").fetchall()
                == entries
            )
            assert [e[4] for e in entries].count("expiry") == 2
            conn.commit()
            report = verify(ledger, read_model_snapshot(conn, "public"))
            assert report.ok, report.problems
    finally:
        container.close()


def test_cycle_scheduler_finds_due_wallets_through_the_read_model(
    api_container: Container, pg_ledger: LedgerApplication, cycle_companies: list[str]
) -> None:
    projector = build_projector(api_container)
    projector.catch_up()
    start = pg_ledger.get_wallet(cycle_companies[0]).cycle_start
    tables = ReadModelTables()
    now = start + timedelta(days=40)
    looked_at, started = run_cycles(pg_ledger, connector(api_container), tables, now)
    assert looked_at >= len(cycle_companies)
    assert started >= len(cycle_companies)
    projector.catch_up()
    projector.close()
    _, again = run_cycles(pg_ledger, connector(api_container), tables, now)
    assert again == 0
    with psycopg.connect(api_container.database_url) as conn:
        rows = conn.execute(
            "SELECT cycle_start, next_cycle_at FROM rm_wallet_balances WHERE company_id = ANY(%s)",
            (cycle_companies,),
        ).fetchall()
    assert all(row[0] <= now < row[1] for row in rows)


# -- auto top-up ----------------------------------------------------------------------------


def test_auto_topup_creates_one_request_per_crossing(
    api_container: Container, pg_ledger: LedgerApplication, company_id: str
) -> None:
    sender = f"{company_id}-s"
    open_company(pg_ledger, company_id, [sender], prepaid="100", rate_card={"marketing": "10"})
    pg_ledger.configure_wallet(
        company_id=company_id,
        auto_topup={"trigger_balance": "30", "amount": "250", "auto_approve": True},
        actor="op",
        idempotency_key="auto",
    )
    for i in range(9):  # 100 -> 10: one crossing of 30
        pg_ledger.apply_usage(_usage(company_id, sender, f"a{i}"))
    reactor = build_auto_topup(api_container)
    assert reactor.react_once() > 0
    reactor.follower.positions.advance(reactor.follower.name, 0)  # no-op: never backwards
    again = build_auto_topup(api_container)
    _rewind(api_container.database_url, again.follower.name)  # as if it crashed before saving
    assert again.react_once() > 0
    topups = _topups(pg_ledger, company_id)
    assert [(t.amount, t.status.value) for t in topups] == [(D("250"), "invoiced")]

    pg_ledger.mark_topup_paid(
        topup_id=topups[0].id, payment_reference="bank", actor="op", idempotency_key="paid"
    )  # balance 260: re-armed
    for i in range(25):  # 260 -> 10: a second crossing
        pg_ledger.apply_usage(_usage(company_id, sender, f"b{i}"))
    while reactor.react_once():
        pass
    assert len(_topups(pg_ledger, company_id)) == 2


def _rewind(url: str, name: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE ledger_follower_positions SET position = 0 WHERE name = %s", (name,))


def _topups(ledger: LedgerApplication, company: str) -> list[Any]:
    wallet = wallet_id(company)
    found = []
    for notification in ledger.recorder.select_notifications(
        1, 1_000_000, topics=["ledger_service.domain.topup:TopupRequest.Requested"]
    ):
        event = ledger.mapper.to_domain_event(notification)
        if event.wallet_id == wallet:
            found.append(ledger.get_topup(event.originator_id))
    return found


# -- pre-send authorization and policy configuration over HTTP ------------------------------


async def test_authorization_answers_match_balances_and_caps(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    s1 = f"{company_id}-s1"
    open_company(
        pg_ledger, company_id, [s1], prepaid="10", limit="5",
        rate_card={"marketing": "0.5", "utility": "0.25"},
    )  # fmt: skip
    operator, tenant = tokens.operator(), tokens.tenant(company_id)

    async def ask(sender: str, category: str, units: int) -> dict[str, Any]:
        position = pg_ledger.recorder.max_notification_id()
        response = await api.get(
            f"/v1/wallets/{company_id}/authorization",
            params={
                "waba_id": sender, "category": category, "units": units,
                "min_position": position,
            },
            headers=tenant,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        return cast(dict[str, Any], response.json())

    allowed = await ask(s1, "marketing", 30)  # 15 <= available 10 + 5
    assert (allowed["allowed"], allowed["reason"], allowed["price"]) == (True, None, "15")
    assert (await ask(s1, "marketing", 31))["reason"] == "INSUFFICIENT_AVAILABLE_BALANCE"
    assert (await ask("other", "marketing", 1))["reason"] == "SENDER_NOT_LINKED"
    assert (await ask(s1, "video", 1))["reason"] == "UNKNOWN_CATEGORY"

    patch = await api.patch(
        f"/v1/wallets/{company_id}",
        json={
            "spending_caps": {"marketing": {"units": 2}},
            "alerts": {"low_balance_threshold": "9.5"},
            "cycle": {"anchor_day": 3, "anchor_time": "09:00", "time_zone": "Europe/Berlin"},
        },
        headers=operator | {"Idempotency-Key": "policies"},
    )
    assert patch.status_code == 200, patch.text
    pg_ledger.apply_usage(_usage(company_id, s1, "m0"))  # 2 units: cap reached, 9 < 9.5
    capped = await ask(s1, "marketing", 1)
    assert (capped["allowed"], capped["reason"]) == (False, "SPENDING_CAP_REACHED")
    assert (await ask(s1, "utility", 1))["allowed"] is True

    wallet = (await api.get(f"/v1/wallets/{company_id}", headers=tenant)).json()
    assert wallet["blocked_categories"] == ["marketing"]
    assert wallet["alerts_active"] == ["low_balance_warning"]
    caps = wallet["policies"]["spending_caps"]
    assert caps == {"marketing": {"units": 2, "amount": None, "hard": False}}
    assert wallet["policies"]["cycle"] == {
        "anchor_day": 3, "anchor_time": "09:00", "time_zone": "Europe/Berlin",
    }  # fmt: skip
    assert datetime.fromisoformat(wallet["cycle"]["next_start"]).astimezone(UTC).hour in (7, 8)
    alerts = (await api.get(f"/v1/wallets/{company_id}/alerts", headers=tenant)).json()
    # Newest first; the cap is checked before the balance in the same deduction.
    assert [a["alert"] for a in alerts["items"]] == ["low_balance_warning", "spending_cap_reached"]
    assert alerts["items"][1]["detail"]["category"] == "marketing"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"cycle": {"anchor_day": 29}}, "VALIDATION_ERROR"),
        ({"cycle": {"time_zone": "Mars/Base"}}, "VALIDATION_ERROR"),
        ({"spending_caps": {"marketing": {}}}, "INVALID_ARGUMENT"),
        ({"alerts": {"low_balance_percent": "101"}}, "INVALID_AMOUNT"),
        ({"alerts": {"burn_limit_24h": 5}}, "INVALID_AMOUNT"),
        ({"auto_topup": {"enabled": True, "amount": "0"}}, "INVALID_AMOUNT"),
        ({"auto_topup": {"surprise": True}}, "VALIDATION_ERROR"),
        ({"alerts": {"renotify": "sometimes"}}, "VALIDATION_ERROR"),
    ],
)
async def test_bad_policies_are_refused_and_write_nothing(
    api: httpx.AsyncClient,
    pg_ledger: LedgerApplication,
    tokens: Tokens,
    company_id: str,
    body: dict[str, Any],
    code: str,
) -> None:
    open_company(pg_ledger, company_id, [f"{company_id}-s1"])
    version = pg_ledger.get_wallet(company_id).version
    response = await api.patch(
        f"/v1/wallets/{company_id}", json=body, headers=tokens.operator() | {"Idempotency-Key": "p"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"] == code, response.text
    assert pg_ledger.get_wallet(company_id).version == version


async def test_patched_auto_topup_and_burn_limit_are_events_that_take_effect(
    api: httpx.AsyncClient,
    api_container: Container,
    pg_ledger: LedgerApplication,
    tokens: Tokens,
    company_id: str,
) -> None:
    sender = f"{company_id}-s"
    open_company(pg_ledger, company_id, [sender], prepaid="100", rate_card={"marketing": "10"})
    before = pg_ledger.get_wallet(company_id).version
    patch = await api.patch(
        f"/v1/wallets/{company_id}",
        json={
            "auto_topup": {"trigger_balance": "50", "amount": "300", "auto_approve": False},
            "alerts": {"low_balance_threshold": "5", "burn_limit_24h": "35"},
        },
        headers=tokens.operator() | {"Idempotency-Key": "policies"},
    )
    assert patch.status_code == 200, patch.text
    recorded = [
        type(e).__name__
        for e in pg_ledger.events.get(wallet_id(company_id), gt=before)  # type: ignore[attr-defined]
    ]
    assert recorded == ["AlertSettingsChanged", "AutoTopupChanged"]

    for i in range(3):  # 2 units x 10 each, 100 -> 40: crosses the 50 trigger; 60 > 35 in 24 h
        pg_ledger.apply_usage(_usage(company_id, sender, f"p{i}"))
    reactor = build_auto_topup(api_container)
    while reactor.react_once():
        pass
    assert [(t.amount, t.status.value) for t in _topups(pg_ledger, company_id)] == [
        (D("300"), "pending")
    ]
    tenant = tokens.tenant(company_id)
    position = pg_ledger.recorder.max_notification_id()
    wallet = (
        await api.get(
            f"/v1/wallets/{company_id}", params={"min_position": position}, headers=tenant
        )
    ).json()
    assert wallet["policies"]["auto_topup"] == {
        "enabled": True, "trigger_balance": "50", "amount": "300", "auto_approve": False,
    }  # fmt: skip
    alerts = (await api.get(f"/v1/wallets/{company_id}/alerts", headers=tenant)).json()
    assert [a["alert"] for a in alerts["items"]] == ["rapid_burn"]


async def test_once_per_cycle_warns_once_a_cycle_over_the_api(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    sender = f"{company_id}-s"
    open_company(pg_ledger, company_id, [sender], prepaid="100", rate_card={"marketing": "10"})
    patch = await api.patch(
        f"/v1/wallets/{company_id}",
        json={"alerts": {"low_balance_threshold": "25", "renotify": "once_per_cycle"}},
        headers=tokens.operator() | {"Idempotency-Key": "renotify"},
    )
    assert patch.status_code == 200, patch.text

    def use(count: int, prefix: str) -> None:  # 2 units x 10 = 20 each
        for i in range(count):
            pg_ledger.apply_usage(_usage(company_id, sender, f"{prefix}{i}"))

    def top_up(reference: str) -> None:
        pg_ledger.credit_wallet(
            company_id=company_id, amount="100", kind="grant", bucket="prepaid",
            reference=reference, actor="t", idempotency_key=reference,
        )  # fmt: skip

    use(4, "a")  # 100 -> 20: below 25, warns
    top_up("t1")  # 120: re-armed
    use(5, "b")  # 120 -> 20: a second crossing this cycle, silent
    top_up("t2")
    use(6, "c")  # 120 -> 0: a third crossing, silent too
    assert alert_names(pg_ledger, company_id) == [
        "low_balance_warning",
        "rearmed:low_balance_warning",
    ]
    wallet = pg_ledger.get_wallet(company_id)
    assert (
        pg_ledger.start_due_cycles(
            [wallet.id], now=wallet.next_cycle_at + timedelta(seconds=1), actor="cycles"
        )
        == 1
    )
    assert alert_names(pg_ledger, company_id)[-1] == "low_balance_warning", "a new cycle warns"

    tenant = tokens.tenant(company_id)
    position = pg_ledger.recorder.max_notification_id()
    read = await api.get(
        f"/v1/wallets/{company_id}", params={"min_position": position}, headers=tenant
    )
    assert read.json()["policies"]["alerts"]["renotify"] == "once_per_cycle"
    alerts = (await api.get(f"/v1/wallets/{company_id}/alerts", headers=tenant)).json()
    warnings = [a for a in alerts["items"] if a["alert"] == "low_balance_warning"]
    assert len(warnings) == 2, alerts


async def test_cycle_scheduler_waits_quietly_for_the_read_models(fresh_database_url: str) -> None:
    """`ledger react` alone on a new database: no read models yet is a wait, not an error."""
    ledger = build_ledger(Settings(environment="test", db_pool_size=2), fresh_database_url)
    stop = asyncio.Event()
    try:
        with structlog.testing.capture_logs() as logs:
            task = asyncio.create_task(
                schedule_cycles(
                    ledger, lambda: psycopg.connect(fresh_database_url),
                    ReadModelTables("public"), stop, interval_s=0.05,
                )
            )  # fmt: skip
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.wait_for(task, timeout=5)
    finally:
        ledger.close()
    events = {entry["event"] for entry in logs}
    assert "cycle_scheduler_waiting" in events
    assert "cycle_scheduler_error" not in events
