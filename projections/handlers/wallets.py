"""Wallet events that change its balance row, its ledger entries and its daily usage."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING

from ledger_service.domain import entries, wallet_events
from ledger_service.domain.consumption import NO_SENDER
from ledger_service.domain.policies import CycleAnchor
from ledger_service.domain.wallet import Wallet
from projections.handlers import HandlerTable
from projections.handlers.grants import apply_grant_parts
from projections.handlers.policies import default_policies_json
from projections.rows import EntryRow, WalletRow

if TYPE_CHECKING:
    from projections.builder import BatchBuilder

ZERO = Decimal(0)
WALLETS = HandlerTable()
_MAY_FILL_GRANTS = frozenset({entries.CreditBucket.GRANTS.value, entries.CreditBucket.DRAWN.value})
"""Credits whose split may hold grant parts: a grant issued, a refund of usage."""


@WALLETS.on(Wallet.Opened)
def opened(b: BatchBuilder, position: int, event: wallet_events.Opened) -> None:
    # As Wallet.__init__: the first cycle is the default anchor's, at the opening time.
    anchor = CycleAnchor()
    b.wallets[event.originator_id] = WalletRow(
        wallet_id=event.originator_id,
        company_id=event.company_id,
        pool_sender_id=event.pool_sender_id,
        currency=event.currency,
        mode=event.mode,
        included=ZERO,
        prepaid=ZERO,
        postpaid_used=ZERO,
        postpaid_limit=event.postpaid_limit,
        included_quota=event.included_quota,
        overage_total=ZERO,
        senders=[],
        rate_card=rate_card_json(event.rate_card),
        opened_at=event.timestamp,
        updated_at=event.timestamp,
        position=position,
        policies=default_policies_json(),
        cycle_start=anchor.cycle_start_at(event.timestamp),
        next_cycle_at=anchor.next_boundary(event.timestamp),
        alerts_active=[],
        blocked="{}",
    )
    b.touched_wallets.add(event.originator_id)


@WALLETS.on(Wallet.SenderLinked)
def sender_linked(b: BatchBuilder, position: int, event: wallet_events.SenderLinked) -> None:
    row = b.touch_wallet(position, event)
    row.senders = sorted({*row.senders, event.waba_id})


@WALLETS.on(Wallet.SenderUnlinked)
def sender_unlinked(b: BatchBuilder, position: int, event: wallet_events.SenderUnlinked) -> None:
    row = b.touch_wallet(position, event)
    row.senders = [s for s in row.senders if s != event.waba_id]


@WALLETS.on(Wallet.PoolMerged)
def pool_merged(b: BatchBuilder, position: int, event: wallet_events.PoolMerged) -> None:
    b.touch_wallet(position, event)  # emptied and unlinked by the entries before it


@WALLETS.on(Wallet.PostpaidLimitChanged)
def postpaid_limit_changed(
    b: BatchBuilder, position: int, event: wallet_events.PostpaidLimitChanged
) -> None:
    b.touch_wallet(position, event).postpaid_limit = event.postpaid_limit


@WALLETS.on(Wallet.TaxRateChanged)
def tax_rate_changed(b: BatchBuilder, position: int, event: wallet_events.TaxRateChanged) -> None:
    b.touch_wallet(position, event).tax_percent = event.tax_percent


@WALLETS.on(Wallet.IncludedQuotaChanged)
def included_quota_changed(
    b: BatchBuilder, position: int, event: wallet_events.IncludedQuotaChanged
) -> None:
    b.touch_wallet(position, event).included_quota = event.included_quota


@WALLETS.on(Wallet.RateCardChanged)
def rate_card_changed(b: BatchBuilder, position: int, event: wallet_events.RateCardChanged) -> None:
    b.touch_wallet(position, event).rate_card = rate_card_json(event.rate_card)


@WALLETS.on(Wallet.Credited)
def credited(b: BatchBuilder, position: int, event: entries.Credited) -> None:
    row = b.touch_wallet(position, event)
    before = row.balance
    split = event.split
    included = split.get("included", ZERO)
    prepaid = split.get("prepaid", ZERO)
    repaid = split.get("postpaid", ZERO)
    row.included += included
    row.prepaid += prepaid
    row.postpaid_used -= repaid
    granted = ZERO
    if event.bucket in _MAY_FILL_GRANTS:
        granted = apply_grant_parts(b, row, split, 1)
    b.entries.append(
        EntryRow(
            position=position,
            wallet_id=row.wallet_id,
            company_id=row.company_id,
            direction="credit",
            kind=event.kind,
            amount=event.amount,
            included=included,
            prepaid=prepaid,
            postpaid=repaid,
            overage=ZERO,
            balance_before=before,
            balance_after=row.balance,
            counter_account=event.counter_account,
            reference=event.reference,
            sender_id=None,
            conversation_id=None,
            category=None,
            units=0,
            unit_price=None,
            actor=event.actor,
            occurred_at=event.timestamp,
            grants=granted,
        )
    )


@WALLETS.on(Wallet.Debited)
def debited(b: BatchBuilder, position: int, event: entries.Debited) -> None:
    row = b.touch_wallet(position, event)
    before = row.balance
    split = event.split
    overage = split["overage"]
    row.included -= split["included"]
    row.prepaid -= split["prepaid"]
    row.postpaid_used += split["postpaid"] + overage
    row.overage_total += overage
    granted = ZERO
    if len(split) > 4:  # grant parts besides included, prepaid, postpaid, overage
        granted = apply_grant_parts(b, row, split, -1)
    # Positional, in EntryRow's field order (mypy checks count and types): nearly every event
    # of a replay is a debit, and keyword arguments made the whole builder 15% slower.
    b.entries.append(
        EntryRow(
            position, row.wallet_id, row.company_id, "debit", event.kind, -event.amount,
            split["included"], split["prepaid"], split["postpaid"], overage,
            before, row.balance, event.counter_account, event.reference,
            event.sender_id, event.conversation_id, event.category, event.units,
            event.unit_price, event.actor, event.timestamp, granted,
        )
    )  # fmt: skip
    if event.category is not None:  # usage: a message, or a feature consumed (no sender)
        sender = NO_SENDER if event.sender_id is None else event.sender_id
        usage = b.usage_row(row.company_id, sender, event.category, event.timestamp)
        usage.billable_count += 1
        usage.units += event.units
        usage.amount += event.amount


@WALLETS.on(Wallet.FailedUsageRecorded)
def failed_usage(b: BatchBuilder, position: int, event: wallet_events.FailedUsageRecorded) -> None:
    row = b.touch_wallet(position, event)
    usage = b.usage_row(row.company_id, event.sender_id, event.category, event.timestamp)
    usage.failed_count += 1
    usage.failed_units += event.units


def rate_card_json(rate_card: dict[str, Decimal]) -> str:
    return json.dumps({k: str(v) for k, v in sorted(rate_card.items())})
