"""The batch builder alone (no database): wallet events from the real aggregates in, balance
rows, ledger entries, daily usage and account totals out."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from ledger_service.domain import accounts
from ledger_service.domain.transfer import Transfer
from ledger_service.domain.wallet import CreditBucket, CreditKind, PoolMode, Wallet
from projections.builder import BatchBuilder, needs_loading
from projections.handlers.policies import default_policies
from projections.rows import EntryRow, UsageRow, WalletRow, columns, values_of
from tests.unit.builder_support import D, Log, credit, open_wallet, use


def test_opening_a_wallet_makes_its_row_as_the_aggregate_starts() -> None:
    log = Log()
    wallet = open_wallet()
    opened, linked = log.record(wallet)
    row = log.wallet(wallet)
    assert row == WalletRow(
        wallet_id=wallet.id, company_id="acme", pool_sender_id=None, currency="USD",
        mode="shared", included=D(0), prepaid=D(0), postpaid_used=D(0), postpaid_limit=D(0),
        included_quota=D(5), overage_total=D(0), senders=["waba-1"],
        rate_card='{"marketing": "0.0500000", "utility": "0.0100000"}', opened_at=opened.timestamp,
        updated_at=linked.timestamp, position=2,
        policies=json.dumps(default_policies(), sort_keys=True),
        cycle_start=wallet.cycle_start, next_cycle_at=wallet.next_cycle_at, alerts_active=[],
        blocked="{}",
    )  # fmt: skip
    assert log.builder.touched_wallets == {wallet.id}
    assert not log.builder.entries
    assert not log.builder.accounts


def test_a_per_sender_wallet_keeps_its_pool_sender() -> None:
    log = Log()
    wallet = Wallet.open(
        company_id="acme", currency="EUR", mode=PoolMode.PER_SENDER, postpaid_limit=D(0),
        included_quota=D(0), rate_card={}, actor="op", pool_sender_id="waba-9",
    )  # fmt: skip
    log.record(wallet)
    row = log.wallet(wallet)
    assert (row.pool_sender_id, row.mode, row.currency, row.rate_card) == (
        "waba-9", "per_sender", "EUR", "{}"
    )  # fmt: skip


def test_senders_stay_sorted_and_unlinking_removes_one() -> None:
    log = Log()
    wallet = open_wallet(sender="waba-b")
    wallet.link_sender("waba-a", actor="op")
    wallet.link_sender("waba-c", actor="op")
    wallet.unlink_sender("waba-b", actor="op")
    log.record(wallet)
    assert log.wallet(wallet).senders == ["waba-a", "waba-c"]


def test_settings_change_the_row_and_stamp_it_with_the_event() -> None:
    log = Log()
    wallet = open_wallet()
    log.record(wallet)
    wallet.change_postpaid_limit(D(250), actor="op")
    wallet.change_included_quota(D(9), actor="op")
    [*_, last] = log.record(wallet)
    wallet.change_rate_card({"utility": D("0.02")}, actor="op")
    [changed] = log.record(wallet)
    row = log.wallet(wallet)
    assert (row.postpaid_limit, row.included_quota) == (D(250), D(9))
    assert row.rate_card == '{"utility": "0.0200000"}', "as the domain normalised it"
    assert (row.position, row.updated_at) == (log.position, changed.timestamp)
    assert last.timestamp <= changed.timestamp


def test_credits_fill_their_buckets_with_an_entry_and_balanced_postings() -> None:
    log = Log()
    wallet = open_wallet()
    credit(wallet, "500", CreditBucket.INCLUDED)
    credit(wallet, "400")
    *_, granted, paid = log.record(wallet)
    row = log.wallet(wallet)
    assert (row.included, row.prepaid, row.balance, row.available) == (500, 400, 900, 900)
    first, second = log.builder.entries
    assert first == EntryRow(
        position=3, wallet_id=wallet.id, company_id="acme", direction="credit", kind="grant",
        amount=D(500), included=D(500), prepaid=D(0), postpaid=D(0), overage=D(0),
        balance_before=D(0), balance_after=D(500), counter_account="promotions",
        reference="quota", sender_id=None, conversation_id=None, category=None, units=0,
        unit_price=None, actor="op", occurred_at=granted.timestamp,
    )  # fmt: skip
    assert (second.kind, second.prepaid, second.balance_before, second.balance_after) == (
        "topup", D(400), D(500), D(900)
    )  # fmt: skip
    assert second.occurred_at == paid.timestamp
    totals = {a.account: (a.total, a.position) for a in log.builder.accounts.values()}
    assert totals == {
        accounts.wallet_account(wallet.id): (D(900), 4),
        "promotions": (D(-500), 3),
        "cash_clearing": (D(-400), 4),
    }


def test_usage_drains_included_then_prepaid_and_counts_the_day() -> None:
    log = Log()
    wallet = open_wallet()
    credit(wallet, "3", CreditBucket.INCLUDED)
    credit(wallet, "400")
    use(wallet, "5", units=2)
    use(wallet, "1")
    *_, first, second = log.record(wallet)
    row = log.wallet(wallet)
    assert (row.included, row.prepaid, row.postpaid_used) == (0, 397, 0)
    debit = log.builder.entries[2]
    assert debit == EntryRow(
        position=5, wallet_id=wallet.id, company_id="acme", direction="debit", kind="usage",
        amount=D(-5), included=D(3), prepaid=D(2), postpaid=D(0), overage=D(0),
        balance_before=D(403), balance_after=D(398), counter_account="revenue:usage",
        reference=first.reference, sender_id="waba-1", conversation_id="c1",
        category="marketing", units=2, unit_price=D("2.5"), actor="ingestion",
        occurred_at=first.timestamp,
    )  # fmt: skip
    day = first.timestamp.date()
    assert second.timestamp.date() == day
    assert list(log.builder.usage.values()) == [
        UsageRow("acme", "waba-1", "marketing", day, billable_count=2, units=3, amount=D(6))
    ]


def test_usage_is_counted_per_utc_day_and_category() -> None:
    builder = BatchBuilder(wallets={}, topups={})
    wallet = open_wallet()
    credit(wallet, "100")
    use(wallet, "1", category="utility")
    events = wallet.collect_events()
    debit = events[-1]
    tomorrow = dataclasses.replace(debit, timestamp=debit.timestamp + timedelta(days=1))
    for position, event in enumerate([*events, tomorrow], start=1):
        builder.apply(position, event)
    days = sorted((key[2], key[3], row.billable_count) for key, row in builder.usage.items())
    today = debit.timestamp.date()
    assert days == [("utility", today, 1), ("utility", today + timedelta(days=1), 1)]


def test_failed_usage_is_counted_but_moves_no_money() -> None:
    log = Log()
    wallet = open_wallet()
    log.record(wallet)
    wallet.record_failed_usage(
        usage_reference="src#f", sender_id="waba-1", conversation_id="c", category="marketing",
        units=3, actor="ingestion",
    )  # fmt: skip
    [failed] = log.record(wallet)
    [usage] = log.builder.usage.values()
    assert (usage.billable_count, usage.failed_count, usage.units, usage.failed_units) == (
        0, 1, 0, 3
    )  # fmt: skip
    assert usage.amount == 0
    assert not log.builder.entries
    assert not log.builder.accounts
    row = log.wallet(wallet)
    assert (row.position, row.updated_at, row.balance) == (3, failed.timestamp, 0)


def test_a_transfer_moves_prepaid_money_and_books_only_the_commission_itself() -> None:
    log = Log()
    source, target = open_wallet("acme"), open_wallet("beta")
    credit(source, "100")
    log.record(source, target)
    transfer = Transfer(
        from_wallet_id=source.id, to_wallet_id=target.id, from_company_id="acme",
        to_company_id="beta", currency="USD", amount=D(10), commission_rate=D("0.1"),
        commission=D(1), net_amount=D(9), commission_account=accounts.COMMISSIONS, note="",
        actor="op",
    )  # fmt: skip
    reference = f"transfer:{transfer.id}"
    source.send_transfer(D(10), transfer_reference=reference, actor="op")
    target.credit(
        D(9), bucket=CreditBucket.PREPAID, kind=CreditKind.TRANSFER,
        counter_account=accounts.TRANSFERS_IN_TRANSIT, reference=reference, actor="op",
    )  # fmt: skip
    [completed] = log.record(transfer)
    log.record(source, target)
    assert needs_loading(completed) is None
    assert (log.wallet(source).prepaid, log.wallet(target).prepaid) == (90, 9)
    sent, received = log.builder.entries[-2:]
    assert (sent.kind, sent.amount, sent.counter_account, sent.category) == (
        "transfer", D(-10), accounts.TRANSFERS_IN_TRANSIT, None
    )  # fmt: skip
    assert (received.kind, received.amount, received.reference) == ("transfer", D(9), reference)
    totals = {a.account: a.total for a in log.builder.accounts.values()}
    assert totals[accounts.COMMISSIONS] == 1
    assert totals[accounts.TRANSFERS_IN_TRANSIT] == 0
    assert not log.builder.usage


def test_a_row_is_written_in_column_order_with_its_derived_columns_last() -> None:
    log = Log()
    wallet = open_wallet(limit="10")
    use(wallet, "4")
    log.record(wallet)
    row = log.wallet(wallet)
    names = columns(WalletRow)
    assert names[-2:] == ("balance", "available")
    assert values_of(WalletRow)(row) == tuple(getattr(row, name) for name in names)
    assert values_of(WalletRow)(row)[-2:] == (D(-4), D(6))
    assert columns(EntryRow) == EntryRow._fields
