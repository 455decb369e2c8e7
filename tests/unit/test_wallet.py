from decimal import Decimal

import pytest

from ledger_service.domain import accounts
from ledger_service.domain.books import trial_balance
from ledger_service.domain.errors import (
    InsufficientFunds,
    InvalidAmount,
    InvalidArgument,
    SenderAlreadyLinked,
    SenderNotLinked,
    UnknownCategory,
)
from ledger_service.domain.ids import wallet_id
from ledger_service.domain.wallet import (
    CreditBucket,
    CreditKind,
    DebitKind,
    DebitSplit,
    PoolMode,
    Wallet,
    split_debit,
)

D = Decimal


def open_wallet(*, included: str = "500", prepaid: str = "400", limit: str = "100") -> Wallet:
    wallet = Wallet.open(
        company_id="acme",
        currency="USD",
        mode=PoolMode.SHARED,
        postpaid_limit=D(limit),
        included_quota=D(included),
        rate_card={"marketing": D("0.05")},
        actor="op",
    )
    wallet.link_sender("waba-1", actor="op")
    if D(included):
        wallet.credit(
            D(included),
            bucket=CreditBucket.INCLUDED,
            kind=CreditKind.GRANT,
            counter_account=accounts.PROMOTIONS,
            reference="quota",
            actor="op",
        )
    if D(prepaid):
        wallet.credit(
            D(prepaid),
            bucket=CreditBucket.PREPAID,
            kind=CreditKind.TOPUP,
            counter_account=accounts.CASH_CLEARING,
            reference="t1",
            actor="op",
        )
    return wallet


def use(wallet: Wallet, amount: str, sender: str = "waba-1") -> object:
    return wallet.record_usage(
        D(amount),
        usage_reference="src#1",
        sender_id=sender,
        conversation_id="c1",
        category="marketing",
        units=1,
        unit_price=D(amount),
        actor="ingestion",
    )


def test_seed_example_splits_500_400_100() -> None:
    wallet = open_wallet()
    split = use(wallet, "1000")
    assert split == DebitSplit(D(500), D(400), D(100), D(0))
    assert (wallet.included, wallet.prepaid, wallet.postpaid_used) == (0, 0, 100)
    assert wallet.balance == D(-100)
    assert wallet.available == D(0)


def test_usage_beyond_the_credit_limit_is_recorded_as_overage() -> None:
    wallet = open_wallet()
    use(wallet, "1000")
    split = use(wallet, "30")
    assert split.overage == D(30)  # type: ignore[attr-defined]
    assert wallet.balance == D(-130)
    assert wallet.available == D(-30)
    assert wallet.overage_total == D(30)


def test_prepaid_credit_repays_postpaid_debt_first() -> None:
    wallet = open_wallet()
    use(wallet, "1000")
    wallet.credit(
        D(150),
        bucket=CreditBucket.PREPAID,
        kind=CreditKind.TOPUP,
        counter_account=accounts.CASH_CLEARING,
        reference="t2",
        actor="op",
    )
    assert (wallet.prepaid, wallet.postpaid_used) == (D(50), D(0))
    assert wallet.balance == D(50)


def test_split_never_draws_more_than_each_bucket_holds() -> None:
    split = split_debit(
        D(10), included=D(3), prepaid=D(0), postpaid_used=D(95), postpaid_limit=D(100)
    )
    assert split == DebitSplit(D(3), D(0), D(5), D(2))


def test_wallet_id_is_deterministic_per_company_and_pool() -> None:
    assert open_wallet().id == wallet_id("acme")
    assert wallet_id("acme") != wallet_id("acme", "waba-1")


def test_events_replay_to_the_same_state() -> None:
    wallet = open_wallet()
    use(wallet, "700")
    events = wallet.collect_events()
    replayed = None
    for domain_event in events:
        replayed = domain_event.mutate(replayed)
    assert replayed is not None
    assert (replayed.included, replayed.prepaid, replayed.postpaid_used) == (
        wallet.included,
        wallet.prepaid,
        wallet.postpaid_used,
    )


def test_books_balance_to_zero() -> None:
    wallet = open_wallet()
    use(wallet, "1000")
    use(wallet, "25")
    totals = trial_balance(wallet.collect_events())
    assert sum(totals.values()) == 0
    assert totals[wallet.account] == wallet.balance
    assert totals[accounts.REVENUE_USAGE] == D(1025)


def test_senders_link_once_and_usage_needs_a_linked_sender() -> None:
    wallet = open_wallet()
    with pytest.raises(SenderAlreadyLinked):
        wallet.link_sender("waba-1", actor="op")
    with pytest.raises(SenderNotLinked):
        use(wallet, "1", sender="waba-2")
    wallet.unlink_sender("waba-1", actor="op")
    with pytest.raises(SenderNotLinked):
        use(wallet, "1")


def test_per_sender_wallet_takes_only_its_own_sender() -> None:
    wallet = Wallet.open(
        company_id="legacy",
        currency="USD",
        mode=PoolMode.PER_SENDER,
        postpaid_limit=D(0),
        included_quota=D(0),
        rate_card={},
        actor="op",
        pool_sender_id="waba-9",
    )
    assert wallet.id == wallet_id("legacy", "waba-9")
    with pytest.raises(InvalidArgument):
        wallet.link_sender("waba-8", actor="op")
    wallet.link_sender("waba-9", actor="op")
    with pytest.raises(InvalidArgument):
        Wallet.open(
            company_id="legacy",
            currency="USD",
            mode=PoolMode.PER_SENDER,
            postpaid_limit=D(0),
            included_quota=D(0),
            rate_card={},
            actor="op",
        )


def test_configuration_changes_are_events() -> None:
    wallet = open_wallet()
    wallet.collect_events()
    wallet.change_postpaid_limit(D(250), actor="op")
    wallet.change_rate_card({"utility": D("0.01")}, actor="op")
    names = [type(e).__name__ for e in wallet.collect_events()]
    assert names == ["PostpaidLimitChanged", "RateCardChanged"]
    assert wallet.available == D(1150)
    assert wallet.price_of("utility", 3) == D("0.03")
    with pytest.raises(UnknownCategory):
        wallet.price_of("marketing", 1)


def test_transfers_draw_on_prepaid_only() -> None:
    wallet = open_wallet(prepaid="40")
    with pytest.raises(InsufficientFunds):
        wallet.send_transfer(D(41), transfer_reference="x", actor="op")
    wallet.send_transfer(D(40), transfer_reference="x", actor="op")
    assert wallet.prepaid == 0


@pytest.mark.parametrize("amount", ["0", "-5", "1.123456789", 2.5])
def test_credits_refuse_bad_amounts(amount: object) -> None:
    wallet = open_wallet()
    with pytest.raises(InvalidAmount):
        wallet.credit(
            amount,
            bucket=CreditBucket.PREPAID,
            kind=CreditKind.TOPUP,  # type: ignore[arg-type]
            counter_account=accounts.CASH_CLEARING,
            reference="r",
            actor="op",
        )


def test_credit_needs_a_known_counter_account() -> None:
    with pytest.raises(InvalidArgument, match="counter account"):
        open_wallet().credit(
            D(1),
            bucket=CreditBucket.PREPAID,
            kind=CreditKind.TOPUP,
            counter_account="somewhere",
            reference="r",
            actor="op",
        )


@pytest.mark.parametrize(
    ("split", "reason"),
    [
        (DebitSplit(D("1"), D("1"), D("0"), D("0")), "does not add up"),
        (DebitSplit(D("0"), D("501"), D("-501"), D("0")), "negative part"),
        (DebitSplit(D("0"), D("401"), D("0"), D("0")), "would leave a bucket"),
    ],
)
def test_a_broken_money_event_is_never_triggered(split: DebitSplit, reason: str) -> None:
    """The aggregate asserts its invariants before an event exists, so a bug in a split can
    neither change the buckets nor leave a pending event to be saved."""
    wallet = open_wallet()
    before = (wallet.version, len(wallet.collect_events()), wallet.balance)
    amount = sum((split.included, split.prepaid, split.postpaid, split.overage), D(0))
    with pytest.raises(AssertionError, match=reason):
        wallet._debit_entry(
            D("1") if reason == "does not add up" else amount,
            split,
            kind=DebitKind.TRANSFER,
            counter_account=accounts.TRANSFERS_IN_TRANSIT,
            reference="bug",
            actor="t",
        )
    assert (wallet.version, len(wallet.collect_events()), wallet.balance) == (
        before[0],
        0,
        before[2],
    )
