"""Adjustments: the four-eyes lifecycle and how an applied adjustment moves a wallet's money."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger_service.domain import accounts
from ledger_service.domain.adjustment import (
    AdjustedBucket,
    Adjustment,
    AdjustmentStatus,
    Direction,
    adjust_wallet,
)
from ledger_service.domain.books import trial_balance
from ledger_service.domain.errors import (
    InsufficientFunds,
    InvalidAmount,
    InvalidArgument,
    InvalidTransition,
    NotPermitted,
)
from ledger_service.domain.wallet import Wallet
from tests.unit.test_wallet import open_wallet, use

D = Decimal


def new(amount: str = "10", threshold: str = "0", actor: str = "ops-a") -> Adjustment:
    return Adjustment.request(
        company_id="acme",
        wallet_id=open_wallet().id,
        direction=Direction.CREDIT,
        amount=D(amount),
        bucket=AdjustedBucket.PREPAID,
        reason="goodwill for outage #12",
        approval_threshold=D(threshold),
        actor=actor,
    )


def adjust(wallet: Wallet, direction: Direction, bucket: AdjustedBucket, amount: str) -> None:
    adjust_wallet(
        wallet, direction=direction, bucket=bucket, amount=D(amount), reference="adj", actor="ops"
    )


def test_above_the_threshold_it_waits_for_a_second_operator() -> None:
    adjustment = new(amount="10", threshold="0")
    assert adjustment.needs_approval
    assert adjustment.status is AdjustmentStatus.PENDING_APPROVAL
    with pytest.raises(NotPermitted):
        adjustment.apply_now(actor="ops-a")
    with pytest.raises(NotPermitted, match="another operator"):
        adjustment.approve(actor="ops-a")
    with pytest.raises(NotPermitted):
        adjustment.reject(reason="no", actor="ops-a")
    adjustment.approve(actor="ops-b")
    assert (adjustment.status, adjustment.approved_by) == (AdjustmentStatus.APPLIED, "ops-b")
    with pytest.raises(InvalidTransition):
        adjustment.approve(actor="ops-c")
    with pytest.raises(InvalidTransition):
        adjustment.reject(reason="late", actor="ops-c")


def test_at_or_below_the_threshold_it_applies_at_once() -> None:
    adjustment = new(amount="10", threshold="10")
    assert not adjustment.needs_approval
    adjustment.apply_now(actor="ops-a")
    assert adjustment.status is AdjustmentStatus.APPLIED
    assert adjustment.approved_by is None


def test_a_rejection_needs_a_reason_and_ends_the_adjustment() -> None:
    adjustment = new()
    with pytest.raises(InvalidArgument):
        adjustment.reject(reason=" ", actor="ops-b")
    adjustment.reject(reason="wrong wallet", actor="ops-b")
    assert (adjustment.status, adjustment.rejected_by) == (AdjustmentStatus.REJECTED, "ops-b")
    assert adjustment.rejection_reason == "wrong wallet"
    with pytest.raises(InvalidTransition):
        adjustment.approve(actor="ops-c")


def test_a_request_needs_a_reason_and_a_positive_amount() -> None:
    with pytest.raises(InvalidArgument):
        Adjustment.request(
            company_id="acme",
            wallet_id=open_wallet().id,
            direction=Direction.DEBIT,
            amount=D("1"),
            bucket=AdjustedBucket.PREPAID,
            reason="",
            approval_threshold=D(0),
            actor="ops-a",
        )
    with pytest.raises(InvalidAmount):
        new(amount="0")


def test_events_replay_to_the_same_state() -> None:
    adjustment = new()
    adjustment.approve(actor="ops-b")
    copy: Adjustment | None = None
    for event in adjustment.collect_events():
        copy = event.mutate(copy)
    assert copy is not None
    assert copy.__dict__ == adjustment.__dict__


def test_credits_and_debits_move_the_named_bucket_and_balance_the_books() -> None:
    wallet = open_wallet(included="0", prepaid="40", limit="100")
    adjust(wallet, Direction.DEBIT, AdjustedBucket.PREPAID, "15")
    assert wallet.prepaid == D("25")
    adjust(wallet, Direction.CREDIT, AdjustedBucket.PREPAID, "5")
    assert wallet.prepaid == D("30")
    use(wallet, "50")  # 30 prepaid, 20 drawn on credit
    assert (wallet.prepaid, wallet.postpaid_used) == (D(0), D(20))
    adjust(wallet, Direction.DEBIT, AdjustedBucket.POSTPAID_USED, "7")
    assert wallet.postpaid_used == D(27)
    adjust(wallet, Direction.CREDIT, AdjustedBucket.POSTPAID_USED, "27")
    assert wallet.postpaid_used == D(0)
    totals = trial_balance(wallet.collect_events())
    assert sum(totals.values()) == 0
    assert totals[wallet.account] == wallet.balance
    assert totals[accounts.ADJUSTMENTS] == D(15) - D(5) + D(7) - D(27)


def test_a_prepaid_credit_repays_debt_first() -> None:
    wallet = open_wallet(included="0", prepaid="0", limit="100")
    use(wallet, "12")
    adjust(wallet, Direction.CREDIT, AdjustedBucket.PREPAID, "20")
    assert (wallet.prepaid, wallet.postpaid_used) == (D(8), D(0))


@pytest.mark.parametrize(
    ("prepaid", "used", "direction", "bucket", "amount", "error"),
    [
        ("10", "0", Direction.DEBIT, AdjustedBucket.PREPAID, "10.01", InsufficientFunds),
        ("0", "5", Direction.CREDIT, AdjustedBucket.POSTPAID_USED, "5.01", InsufficientFunds),
        ("0", "95", Direction.DEBIT, AdjustedBucket.POSTPAID_USED, "5.01", InsufficientFunds),
        ("10", "0", Direction.DEBIT, AdjustedBucket.POSTPAID_USED, "1", InvalidArgument),
    ],
)
def test_an_adjustment_never_breaks_a_bucket(
    prepaid: str,
    used: str,
    direction: Direction,
    bucket: AdjustedBucket,
    amount: str,
    error: type[Exception],
) -> None:
    wallet = open_wallet(included="0", prepaid=prepaid, limit="100")
    if D(used):
        use(wallet, used)
    version = wallet.version
    with pytest.raises(error):
        adjust(wallet, direction, bucket, amount)
    assert wallet.version == version
