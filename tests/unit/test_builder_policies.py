"""The batch builder alone (no database): alerts, spending caps, policy settings and cycles."""

from __future__ import annotations

import json
from datetime import timedelta

from ledger_service.domain.policies import (
    BALANCE_RECOVERED,
    BELOW_ZERO,
    CREDIT_LIMIT_EXCEEDED,
    SPENDING_CAP_REACHED,
    CycleAnchor,
)
from ledger_service.domain.wallet import CreditBucket, Wallet
from projections.handlers.policies import default_policies
from tests.unit.builder_support import D, Log, credit, open_wallet, use


def test_usage_beyond_the_limit_is_overage_and_raises_balance_alerts() -> None:
    log = Log()
    wallet = open_wallet(limit="10")
    use(wallet, "15")
    log.record(wallet)
    row = log.wallet(wallet)
    assert (row.postpaid_used, row.overage_total, row.balance, row.available) == (15, 5, -15, -5)
    [debit] = log.builder.entries
    assert (debit.postpaid, debit.overage, debit.balance_after) == (D(10), D(5), D(-15))
    assert row.alerts_active == sorted([BELOW_ZERO, CREDIT_LIMIT_EXCEEDED])
    raised = {alert.alert: json.loads(alert.detail) for alert in log.builder.alerts}
    assert raised == {
        BELOW_ZERO: {"available": "-5", "balance": "-15", "measured": None, "threshold": "0"},
        CREDIT_LIMIT_EXCEEDED: {
            "available": "-5", "balance": "-15", "measured": None, "threshold": "0",
        },
    }  # fmt: skip
    assert all(alert.wallet_id == wallet.id for alert in log.builder.alerts)


def test_a_credit_repays_postpaid_first_and_records_the_recovery() -> None:
    log = Log()
    wallet = open_wallet(limit="10")
    use(wallet, "15")
    log.record(wallet)
    credit(wallet, "100")
    *_, rearmed = log.record(wallet)
    row = log.wallet(wallet)
    assert (row.prepaid, row.postpaid_used, row.overage_total) == (85, 0, 5)
    repayment = log.builder.entries[-1]
    assert (repayment.amount, repayment.postpaid, repayment.prepaid) == (D(100), D(15), D(85))
    assert row.alerts_active == []
    recovery = log.builder.alerts[-1]
    assert (recovery.alert, recovery.occurred_at) == (BALANCE_RECOVERED, rearmed.timestamp)
    assert json.loads(recovery.detail) == {
        "available": "95",
        "balance": "85",
        "recovered": sorted([BELOW_ZERO, CREDIT_LIMIT_EXCEEDED]),
    }


def test_a_spending_cap_blocks_its_category_for_the_day_without_an_active_alert() -> None:
    log = Log()
    wallet = open_wallet()
    credit(wallet, "100")
    wallet.change_spending_caps({"marketing": {"units": 2}}, actor="op")
    use(wallet, "1", units=2)
    *_, reached = log.record(wallet)
    assert reached.alert == SPENDING_CAP_REACHED
    row = log.wallet(wallet)
    caps = json.loads(row.policies)["spending_caps"]
    assert caps == {"marketing": {"units": 2, "amount": None, "hard": False}}
    assert json.loads(row.blocked) == {"marketing": reached.day}
    assert row.alerts_active == []
    [alert] = log.builder.alerts
    assert json.loads(alert.detail) == {
        "available": "99", "balance": "99", "category": "marketing", "day": reached.day,
        "measured": "1", "threshold": None,
    }  # fmt: skip


def test_policy_settings_replace_their_section_of_the_policies() -> None:
    log = Log()
    wallet = open_wallet()
    wallet.configure_alerts(
        low_balance_threshold=None, low_balance_percent=D(25), burn_limit_24h=D(100), actor="op"
    )
    wallet.configure_auto_topup(
        enabled=True, trigger_balance=D(10), amount=D(50), auto_approve=False, actor="op"
    )
    wallet.change_cycle_anchor(CycleAnchor(15, "09:30", "Europe/Berlin"), actor="op")
    events = log.record(wallet)
    assert Wallet.AutoTopupTriggered in {type(e) for e in events}, "the balance 0 is below 10"
    row = log.wallet(wallet)
    alerts = {
        "low_balance_threshold": None,
        "low_balance_percent": "25",
        "burn_limit_24h": "100",
        "renotify": "per_crossing",
    }
    auto_topup = {"enabled": True, "trigger_balance": "10", "amount": "50", "auto_approve": False}
    cycle = {"anchor_day": 15, "anchor_time": "09:30", "time_zone": "Europe/Berlin"}
    expected = default_policies() | {"alerts": alerts, "auto_topup": auto_topup, "cycle": cycle}
    assert json.loads(row.policies) == expected
    assert row.next_cycle_at == wallet.next_cycle_at
    assert row.cycle_start == wallet.cycle_start
    assert (row.position, row.updated_at) == (log.position, events[-1].timestamp)
    assert not log.builder.alerts, "an auto top-up trigger is no alert"


def test_a_new_cycle_expires_unused_quota_and_grants_the_next() -> None:
    log = Log()
    wallet = open_wallet()
    credit(wallet, "5", CreditBucket.INCLUDED)
    use(wallet, "2")
    log.record(wallet)
    assert wallet.start_due_cycles(wallet.next_cycle_at + timedelta(minutes=1), actor="cycles")
    expired, granted, started = log.record(wallet)
    assert type(started) is Wallet.CycleStarted
    row = log.wallet(wallet)
    assert (row.cycle_start, row.next_cycle_at) == (started.cycle_start, started.next_cycle_at)
    assert (row.cycle_start, row.next_cycle_at) == (wallet.cycle_start, wallet.next_cycle_at)
    assert (row.included, row.balance) == (5, 5)
    expiry, grant = log.builder.entries[-2:]
    assert (expiry.kind, expiry.amount, expiry.included, expiry.sender_id) == (
        "expiry", D(-3), D(3), None
    )  # fmt: skip
    assert (grant.kind, grant.amount, grant.occurred_at) == ("grant", D(5), granted.timestamp)
    assert expired.timestamp <= granted.timestamp
    [usage] = log.builder.usage.values()
    assert usage.billable_count == 1, "an expiry is no usage"
