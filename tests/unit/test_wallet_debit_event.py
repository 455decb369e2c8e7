"""``Wallet._trigger_debited`` writes out the library's ``trigger_event`` for the debit (the one
event of every message billed): it must give the same event, and leave the wallet as the
library's way does, as replay does."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from ledger_service.domain import accounts
from ledger_service.domain.wallet import CreditBucket, CreditKind, Wallet
from ledger_service.domain.wallet_setup import PoolMode

AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def opened(*, prepaid: str = "0", grant: str | None = None) -> Wallet:
    wallet = Wallet.open(
        company_id="acme",
        currency="USD",
        mode=PoolMode.SHARED,
        postpaid_limit=Decimal("1"),
        included_quota=Decimal("0.02"),
        rate_card={"marketing": Decimal("0.0125")},
        actor="test",
        at=AT,
    )
    wallet.link_sender("waba-1", actor="test")
    if prepaid != "0":
        wallet.credit(
            Decimal(prepaid),
            bucket=CreditBucket.PREPAID,
            kind=CreditKind.TOPUP,
            counter_account=accounts.CASH_CLEARING,
            reference="topup-1",
            actor="test",
        )
    if grant is not None:
        wallet.issue_grant(
            grant_id="promo",
            amount=Decimal(grant),
            reason="welcome",
            reference="grant-1",
            actor="test",
            priority=1,
            now=AT,
        )
    return wallet


def by_the_library(wallet: Wallet) -> None:
    """Make ``wallet`` trigger its debits the library's way."""

    def trigger(entry: dict[str, Any], timestamp: datetime | None) -> None:
        wallet.trigger_event(type(wallet).Debited, timestamp=timestamp, **entry)

    wallet._trigger_debited = trigger  # type: ignore[method-assign]


def usage(wallet: Wallet, n: int) -> None:
    wallet.record_usage(
        Decimal("0.0125") * n,
        usage_reference=f"//wa#m{n}",
        sender_id="waba-1",
        conversation_id=f"conv-{n}",
        category="marketing",
        units=n,
        unit_price=Decimal("0.0125"),
        actor="ingestion",
        at=AT,
    )


def debits(wallet: Wallet, record: Callable[[Wallet], None]) -> tuple[Wallet, Wallet]:
    """(written out, the library's): the same wallet, the same debits, both ways."""
    ours, theirs = copy.deepcopy(wallet), copy.deepcopy(wallet)
    by_the_library(theirs)
    record(ours)
    record(theirs)
    del theirs._trigger_debited  # type: ignore[attr-defined]
    return ours, theirs


def state(wallet: Wallet) -> dict[str, Any]:
    return {k: v for k, v in vars(wallet).items() if k != "_pending_events"}


def replayed(wallet: Wallet) -> Wallet:
    aggregate = None
    for event in wallet.pending_events:
        aggregate = event.mutate(aggregate)
    assert isinstance(aggregate, Wallet)
    return aggregate


RECORDS: dict[str, Callable[[Wallet], None]] = {
    "usage from the included quota": lambda w: usage(w, 1),
    "usage into postpaid credit and overage": lambda w: [usage(w, n) for n in (1, 2, 90)],
    "a transfer": lambda w: w.send_transfer(
        Decimal("1.5"), transfer_reference="t-1", actor="tenant"
    ),
}


CASES = [(name, grant) for name in RECORDS for grant in (None, "0.05") if name != "a transfer"]
CASES.append(("a transfer", None))  # a transfer draws prepaid money only: never a grant


@pytest.mark.parametrize(("name", "grant"), CASES)
def test_a_debit_is_the_librarys_event_with_the_librarys_effects(
    name: str, grant: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A debit without a time of its own (a transfer) is stamped now: the same now both ways.
    monkeypatch.setattr(Wallet.Debited, "create_timestamp", staticmethod(lambda: AT))
    wallet = opened(prepaid="2" if name == "a transfer" else "0", grant=grant)
    ours, theirs = debits(wallet, RECORDS[name])
    new = len(wallet.pending_events)
    assert ours.pending_events[new:], "no debit recorded"
    for mine, library in zip(ours.pending_events, theirs.pending_events, strict=True):
        assert type(mine) is type(library)
        assert list(vars(mine).items()) == list(vars(library).items())  # order too: stored JSON
        assert mine == library
    assert state(ours) == state(theirs)
    assert state(replayed(ours)) == state(ours)


def test_a_debit_carries_every_field_of_its_class() -> None:
    wallet = opened()
    usage(wallet, 1)
    debit = next(e for e in wallet.pending_events if isinstance(e, Wallet.Debited))
    assert isinstance(debit, Wallet.Debited)
    assert list(vars(debit)) == [f.name for f in dataclasses.fields(Wallet.Debited)]
