"""Wallets kept in a unit of account: top-ups invoiced in money at the rate of the request,
the wallet credited the units bought."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from uuid import UUID

import pytest
from pydantic import ValidationError

from ledger_service.config import Settings
from ledger_service.domain.books import trial_balance
from ledger_service.domain.credits import check_credit_rates
from ledger_service.domain.errors import CurrencyMismatch, InvalidAmount, InvalidArgument
from ledger_service.service.ledger import LedgerApplication
from tests.fakes import InMemoryLedger
from tests.unit.test_application import all_events

D = Decimal


@pytest.fixture
def ledger() -> Iterator[LedgerApplication]:
    app = InMemoryLedger()
    app.credit_rates = check_credit_rates({"CREDIT": {"INR": "10", "USD": "800"}})
    app.open_wallet(
        company_id="acme", currency="CREDIT", rate_card={"ai_summary": "5"}, actor="op",
        idempotency_key="open",
    )  # fmt: skip
    yield app
    app.close()


def request(ledger: LedgerApplication, amount: str, currency: str, key: str) -> dict[str, object]:
    return dict(
        ledger.request_topup(
            company_id="acme", amount=amount, currency=currency, actor="t", idempotency_key=key
        )
    )


def test_money_buys_units_at_the_rate_of_the_request(ledger: LedgerApplication) -> None:
    ledger.topup_tax_percent = D(18)
    asked = request(ledger, "100", "INR", "r1")
    assert (asked["credit_unit"], asked["credit_rate"], asked["credits"]) == (
        "CREDIT",
        "10",
        "1000",
    )
    topup_id = UUID(str(asked["topup_id"]))
    ledger.credit_rates = check_credit_rates({"CREDIT": {"INR": "20"}})  # a later price change
    ledger.approve_topup(topup_id=topup_id, actor="op", idempotency_key="a")
    topup = ledger.get_topup(topup_id)
    assert (topup.amount, topup.currency, topup.total) == (D(100), "INR", D(118))
    ledger.mark_topup_paid(
        topup_id=topup_id, payment_reference="b", actor="op", idempotency_key="p"
    )
    wallet = ledger.get_wallet("acme")
    assert (wallet.currency, wallet.prepaid) == ("CREDIT", D(1000)), "the rate it was asked at"
    assert sum(trial_balance(all_events(ledger)).values()) == 0  # type: ignore[arg-type]


def test_what_is_not_sold_is_refused(ledger: LedgerApplication) -> None:
    with pytest.raises(CurrencyMismatch):
        request(ledger, "10", "EUR", "r1")
    with pytest.raises(InvalidArgument):
        ledger.open_wallet(
            company_id="beta", currency="DIAMOND", actor="op", idempotency_key="open-b"
        )
    with pytest.raises(InvalidArgument):
        check_credit_rates({"GEM": {"USD": "1"}})  # reads as a currency code
    with pytest.raises(InvalidAmount):
        check_credit_rates({"CREDIT": {"USD": "0"}})
    with pytest.raises(ValidationError, match="LEDGER_CREDIT_RATES"):
        Settings(environment="test", credit_rates={"CREDIT": {"usd": "1"}})
    money = InMemoryLedger()
    try:
        money.open_wallet(company_id="m", currency="USD", actor="op", idempotency_key="o")
        with pytest.raises(CurrencyMismatch):
            money.request_topup(
                company_id="m", amount="1", currency="INR", actor="t", idempotency_key="r"
            )
    finally:
        money.close()
