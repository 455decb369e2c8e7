"""Synchronous consumption in the domain: recorded like usage, refused when it does not fit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ledger_service.domain import accounts
from ledger_service.domain.consumption import consume, entry_reference
from ledger_service.domain.entries import Debited, DebitKind
from ledger_service.domain.errors import (
    InsufficientAvailableBalance,
    SpendingCapReached,
    UnknownCategory,
)
from ledger_service.domain.wallet import CreditBucket, CreditKind, PoolMode, Wallet

D = Decimal
NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def new_wallet(*, prepaid: str = "10", included: str = "1", limit: str = "0") -> Wallet:
    wallet = Wallet.open(
        company_id="acme",
        currency="USD",
        mode=PoolMode.SHARED,
        postpaid_limit=D(limit),
        included_quota=D(included),
        rate_card={"ai_summary": D("0.5"), "marketing": D("1")},
        actor="op",
        at=NOON - timedelta(days=1),
    )
    wallet.link_sender("w1", actor="op")
    for amount, bucket in ((included, CreditBucket.INCLUDED), (prepaid, CreditBucket.PREPAID)):
        if D(amount) == 0:
            continue
        wallet.credit(
            D(amount),
            bucket=bucket,
            kind=CreditKind.GRANT,
            counter_account=accounts.PROMOTIONS,
            reference=f"fund-{bucket}",
            actor="op",
        )
    wallet.collect_events()
    return wallet


def spend(wallet: Wallet, units: int, reference: str, *, at: datetime = NOON) -> D:
    return consume(
        wallet, feature="ai_summary", units=units, reference=reference, actor="svc", now=at
    ).amount


def message(wallet: Wallet, units: int, reference: str) -> None:
    wallet.record_usage(
        D(units),
        usage_reference=reference,
        sender_id="w1",
        conversation_id="c",
        category="marketing",
        units=units,
        unit_price=D(1),
        actor="ingestion",
        at=NOON,
    )


def test_consumption_is_a_usage_debit_in_bucket_order_without_a_sender() -> None:
    wallet = new_wallet()
    assert spend(wallet, 4, "r1") == D(2)  # 1 from included, 1 from prepaid
    (debit,) = (e for e in wallet.collect_events() if isinstance(e, Debited))
    assert entry_reference("acme", "r1") == "consume:acme#r1"
    assert (debit.kind, debit.reference, debit.category, debit.units) == (
        DebitKind.USAGE, entry_reference("acme", "r1"), "ai_summary", 4,
    )  # fmt: skip
    assert (debit.sender_id, debit.conversation_id, debit.unit_price) == (None, None, D("0.5"))
    assert (debit.split["included"], debit.split["prepaid"]) == (D(1), D(1))
    assert (wallet.included, wallet.prepaid) == (D(0), D(9))
    assert wallet.spend_day.categories["ai_summary"].units == 4


def test_refused_when_available_does_not_cover_it_holds_included() -> None:
    wallet = new_wallet(prepaid="2", included="0", limit="1")
    wallet.place_hold(
        hold_id="h", reference="m1", source=None, sender_id="w1", category="marketing",
        units=2, ttl_s=60, actor="svc", now=NOON,
    )  # fmt: skip
    wallet.collect_events()
    with pytest.raises(InsufficientAvailableBalance):
        spend(wallet, 3, "r1")  # 1.5 > 2 + 1 - 2 held
    assert wallet.collect_events() == [], "nothing written"
    assert spend(wallet, 2, "r2") == D(1)  # exactly what is available
    assert wallet.available == D(0)
    with pytest.raises(UnknownCategory):
        consume(wallet, feature="nope", units=1, reference="r3", actor="svc", now=NOON)


def test_a_hard_cap_refuses_consumption_that_would_pass_it_but_never_messages() -> None:
    wallet = new_wallet(prepaid="100")
    wallet.change_spending_caps(
        {"ai_summary": {"units": 5, "hard": True}, "marketing": {"units": 2, "hard": True}},
        actor="op",
    )
    assert spend(wallet, 3, "r1") == D("1.5")
    with pytest.raises(SpendingCapReached):
        spend(wallet, 3, "r2")  # 6 > 5
    spend(wallet, 2, "r3")  # reaches 5: allowed, and the cap alert blocks the rest of the day
    assert wallet.blocked == {"ai_summary": "2026-11-23"}
    with pytest.raises(SpendingCapReached):
        spend(wallet, 1, "r4")

    for n in range(4):  # messages beyond their hard cap: usage is a fact, recorded
        message(wallet, 1, f"m{n}")
    assert wallet.spend_day.categories["marketing"].units == 4
    with pytest.raises(SpendingCapReached):
        consume(wallet, feature="marketing", units=1, reference="r6", actor="svc", now=NOON)
    assert spend(wallet, 5, "r5", at=NOON + timedelta(days=1)) == D("2.5"), "a new day"


def test_a_soft_cap_alerts_but_does_not_refuse() -> None:
    wallet = new_wallet(prepaid="100")
    wallet.change_spending_caps({"ai_summary": {"units": 2}}, actor="op")
    spend(wallet, 2, "r1")
    assert spend(wallet, 3, "r2") == D("1.5")
    assert wallet.spend_day.categories["ai_summary"].units == 5
