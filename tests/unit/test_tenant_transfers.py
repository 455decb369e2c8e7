"""Tenant transfers (gifts): the service's commission paid to an agency's wallet in the same
save, balanced books, and the sender's daily transfer limit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from ledger_service.domain.books import trial_balance
from ledger_service.domain.errors import InvalidArgument, TransferLimitReached
from ledger_service.domain.transfer import Transfer
from ledger_service.domain.wallet_transfers import sent_today
from ledger_service.service.ledger import LedgerApplication
from tests.fakes import InMemoryLedger
from tests.unit.test_application import all_events, open_acme, topup

D = Decimal


@pytest.fixture
def ledger() -> Iterator[LedgerApplication]:
    app = InMemoryLedger()
    for company in ("alice-co", "bob-co", "agency-co"):
        open_acme(app, company, included_quota="0")
    topup(app, "alice-co", "100", "t")
    yield app
    app.close()


def gift(ledger: LedgerApplication, amount: str, key: str, to: str = "bob-co") -> dict[str, str]:
    return dict(
        ledger.send_transfer(
            from_company_id="alice-co", to_company_id=to, amount=amount, gift_type="rose",
            message="for you", actor="alice@alice-co", idempotency_key=key,
        )
    )  # fmt: skip


def test_the_commission_goes_to_the_agency_wallet_and_the_books_balance(
    ledger: LedgerApplication,
) -> None:
    ledger.transfer_commission_rate = D("0.1")
    ledger.transfer_agency_company_id = "agency-co"
    made = gift(ledger, "50", "g1")
    assert (made["commission"], made["net_amount"]) == ("5", "45")
    prepaid = {c: ledger.get_wallet(c).prepaid for c in ("alice-co", "bob-co", "agency-co")}
    assert prepaid == {"alice-co": D(50), "bob-co": D(45), "agency-co": D(5)}
    transfer = ledger.repository.get(UUID(made["transfer_id"]))
    assert isinstance(transfer, Transfer)
    assert (transfer.gift_type, transfer.message) == ("rose", "for you")
    totals = trial_balance(all_events(ledger))  # type: ignore[arg-type]
    assert sum(totals.values()) == 0
    assert totals["commissions"] == 0, "earned and paid on to the agency"
    assert totals["transfers:in_transit"] == 0

    gift(ledger, "10", "g2", to="agency-co")  # the agency as receiver: one wallet, two credits
    assert ledger.get_wallet("agency-co").prepaid == D(5) + D(9) + D(1)
    assert sum(trial_balance(all_events(ledger)).values()) == 0  # type: ignore[arg-type]


def test_without_an_agency_the_commission_stays_in_the_account(ledger: LedgerApplication) -> None:
    ledger.transfer_commission_rate = D("0.05")
    gift(ledger, "20", "g1")
    totals = trial_balance(all_events(ledger))  # type: ignore[arg-type]
    assert totals["commissions"] == D(1)
    assert ledger.get_wallet("agency-co").prepaid == 0


def test_the_daily_limit_holds_tenant_transfers_only(ledger: LedgerApplication) -> None:
    ledger.configure_wallet(
        company_id="alice-co", transfers={"daily_limit": "30"}, actor="op", idempotency_key="lim"
    )
    gift(ledger, "20", "g1")
    with pytest.raises(TransferLimitReached):
        gift(ledger, "11", "g2")
    gift(ledger, "10", "g3")  # exactly the limit
    ledger.transfer(
        from_company_id="alice-co",
        to_company_id="bob-co",
        amount="5",
        actor="op",
        idempotency_key="op-1",
    )  # fmt: skip  (an operator's correction is not held to it, but it counts)
    wallet = ledger.get_wallet("alice-co")
    now = datetime.now(UTC)
    assert sent_today(wallet, now) == D(35)
    tomorrow = now + timedelta(days=1)
    assert sent_today(wallet, tomorrow) == 0, "a new day in the wallet's time zone"
    wallet.check_transfer_allowance(D(30), tomorrow)
    ledger.configure_wallet(
        company_id="alice-co", transfers={"daily_limit": None}, actor="op", idempotency_key="off"
    )
    gift(ledger, "40", "g4")


def test_bad_gifts_are_refused(ledger: LedgerApplication) -> None:
    with pytest.raises(InvalidArgument):
        gift(ledger, "1", "g1", to="alice-co")
    with pytest.raises(InvalidArgument):
        ledger.send_transfer(
            from_company_id="alice-co", to_company_id="bob-co", amount="1", gift_type="a b",
            actor="alice", idempotency_key="g2",
        )  # fmt: skip
