import re
from collections.abc import Iterator
from decimal import Decimal
from uuid import UUID

import pytest

from ledger_service.domain.books import trial_balance
from ledger_service.domain.errors import (
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidArgument,
    InvalidTransition,
    PriceMismatch,
    SenderAlreadyLinked,
    SenderNotLinked,
    WalletAlreadyExists,
    WalletNotFound,
)
from ledger_service.domain.usage import Usage, UsageOutcome
from ledger_service.service.ledger import LedgerApplication
from tests.fakes import InMemoryLedger

D = Decimal


@pytest.fixture
def ledger() -> Iterator[LedgerApplication]:
    app = InMemoryLedger()
    yield app
    app.close()


def open_acme(ledger: LedgerApplication, company: str = "acme", **kwargs: object) -> None:
    params: dict[str, object] = {
        "currency": "USD",
        "postpaid_limit": "100",
        "included_quota": "500",
        "rate_card": {"marketing": "0.05", "utility": "1"},
    } | kwargs
    ledger.open_wallet(company_id=company, actor="op", idempotency_key=f"open-{company}", **params)  # type: ignore[arg-type]


def topup(ledger: LedgerApplication, company: str, amount: str, key: str) -> str:
    result = ledger.request_topup(
        company_id=company,
        amount=amount,
        currency="USD",
        actor="alice",
        idempotency_key=f"{key}-req",
    )
    topup_id = UUID(result["topup_id"])
    ledger.approve_topup(topup_id=topup_id, actor="op", idempotency_key=f"{key}-approve")
    ledger.mark_topup_paid(
        topup_id=topup_id,
        payment_reference=f"bank-{key}",
        actor="op",
        idempotency_key=f"{key}-paid",
    )
    return result["topup_id"]


def all_events(ledger: LedgerApplication) -> list[object]:
    return [
        ledger.mapper.to_domain_event(n)
        for n in ledger.recorder.select_notifications(start=1, limit=1_000_000)
    ]


def test_opening_grants_the_included_quota(ledger: LedgerApplication) -> None:
    open_acme(ledger)
    wallet = ledger.get_wallet("acme")
    assert (wallet.included, wallet.prepaid, wallet.balance, wallet.available) == (
        D(500),
        D(0),
        D(500),
        D(600),
    )


def test_idempotent_repeat_returns_the_original_and_writes_nothing(
    ledger: LedgerApplication,
) -> None:
    open_acme(ledger)
    first = ledger.request_topup(
        company_id="acme", amount="10", currency="USD", actor="alice", idempotency_key="k1"
    )
    count = len(all_events(ledger))
    again = ledger.request_topup(
        company_id="acme", amount="10", currency="USD", actor="alice", idempotency_key="k1"
    )
    assert again == first
    assert len(all_events(ledger)) == count
    with pytest.raises(IdempotencyConflict):
        ledger.request_topup(
            company_id="acme", amount="11", currency="USD", actor="alice", idempotency_key="k1"
        )


def test_idempotency_keys_are_scoped_per_company(ledger: LedgerApplication) -> None:
    open_acme(ledger, "acme")
    open_acme(ledger, "globex")
    a = ledger.request_topup(
        company_id="acme", amount="10", currency="USD", actor="a", idempotency_key="same"
    )
    b = ledger.request_topup(
        company_id="globex", amount="10", currency="USD", actor="b", idempotency_key="same"
    )
    assert a["topup_id"] != b["topup_id"]


def test_a_failed_command_does_not_claim_its_key(ledger: LedgerApplication) -> None:
    open_acme(ledger)
    with pytest.raises(CurrencyMismatch):
        ledger.request_topup(
            company_id="acme", amount="10", currency="EUR", actor="a", idempotency_key="k"
        )
    result = ledger.request_topup(
        company_id="acme", amount="10", currency="USD", actor="a", idempotency_key="k"
    )
    assert result["status"] == "pending"


def test_topup_lifecycle_credits_prepaid_once_with_invoice(ledger: LedgerApplication) -> None:
    open_acme(ledger)
    topup_id = UUID(topup(ledger, "acme", "400", "t1"))
    request = ledger.get_topup(topup_id)
    assert request.status.value == "completed"
    assert re.fullmatch(r"TOP-\d{6}-acme-[0-9A-F]{8}", request.invoice_number or "")
    assert ledger.get_wallet("acme").prepaid == D(400)
    with pytest.raises(InvalidTransition):
        ledger.mark_topup_paid(
            topup_id=topup_id,
            payment_reference="bank-again",
            actor="op",
            idempotency_key="other-key",
        )
    # The retried request with the original key is answered, not re-applied.
    ledger.mark_topup_paid(
        topup_id=topup_id, payment_reference="bank-t1", actor="op", idempotency_key="t1-paid"
    )
    assert ledger.get_wallet("acme").prepaid == D(400)


def test_invoice_numbers_are_unique_per_request(ledger: LedgerApplication) -> None:
    open_acme(ledger)
    numbers = {
        ledger.get_topup(UUID(topup(ledger, "acme", "1", f"t{i}"))).invoice_number
        for i in range(20)
    }
    assert len(numbers) == 20


def test_transfer_with_commission_is_atomic_and_balanced(ledger: LedgerApplication) -> None:
    open_acme(ledger, "alice-co", included_quota="0")
    open_acme(ledger, "bob-co", included_quota="0")
    topup(ledger, "alice-co", "100", "t")
    result = ledger.transfer(
        from_company_id="alice-co",
        to_company_id="bob-co",
        amount="50",
        commission_rate="0.1",
        actor="alice",
        idempotency_key="gift-1",
    )
    assert (result["commission"], result["net_amount"]) == ("5", "45")
    assert ledger.get_wallet("alice-co").prepaid == D(50)
    assert ledger.get_wallet("bob-co").prepaid == D(45)
    totals = trial_balance(all_events(ledger))  # type: ignore[arg-type]
    assert sum(totals.values()) == 0
    assert totals["commissions"] == D(5)
    assert totals["transfers:in_transit"] == 0


def test_transfer_beyond_prepaid_is_refused_whole(ledger: LedgerApplication) -> None:
    open_acme(ledger, "alice-co")
    open_acme(ledger, "bob-co")
    topup(ledger, "alice-co", "10", "t")
    count = len(all_events(ledger))
    with pytest.raises(InsufficientFunds):
        ledger.transfer(
            from_company_id="alice-co",
            to_company_id="bob-co",
            amount="10.01",
            actor="alice",
            idempotency_key="gift",
        )
    assert len(all_events(ledger)) == count
    with pytest.raises(InvalidArgument):
        ledger.transfer(
            from_company_id="alice-co",
            to_company_id="bob-co",
            amount="1",
            commission_rate="1",
            actor="alice",
            idempotency_key="gift2",
        )


def test_wallet_and_sender_rules(ledger: LedgerApplication) -> None:
    open_acme(ledger)
    with pytest.raises(WalletAlreadyExists):
        ledger.open_wallet(company_id="acme", currency="USD", actor="op", idempotency_key="x")
    with pytest.raises(WalletNotFound):
        ledger.get_wallet("nobody")
    open_acme(ledger, "globex")
    ledger.link_sender(company_id="acme", waba_id="w1", actor="op", idempotency_key="l1")
    with pytest.raises(SenderAlreadyLinked):
        ledger.link_sender(company_id="globex", waba_id="w1", actor="op", idempotency_key="l2")
    ledger.unlink_sender(company_id="acme", waba_id="w1", actor="op", idempotency_key="u1")
    ledger.link_sender(company_id="globex", waba_id="w1", actor="op", idempotency_key="l3")
    assert ledger.get_wallet("globex").senders == {"w1"}


def usage(event_id: str, **kwargs: object) -> Usage:
    fields: dict[str, object] = {
        "source": "//messaging/whatsapp",
        "event_id": event_id,
        "company_id": "acme",
        "waba_id": "w1",
        "conversation_id": "c1",
        "category": "marketing",
        "status": "delivered",
        "units": 2,
    } | kwargs
    return Usage(**fields)  # type: ignore[arg-type]


def test_usage_is_applied_exactly_once_and_priced_by_rate_card(
    ledger: LedgerApplication,
) -> None:
    open_acme(ledger)
    ledger.link_sender(company_id="acme", waba_id="w1", actor="op", idempotency_key="l1")
    assert ledger.apply_usage(usage("m1")) is UsageOutcome.APPLIED
    assert ledger.apply_usage(usage("m1")) is UsageOutcome.DUPLICATE
    assert ledger.get_wallet("acme").included == D("499.9")
    ledger.apply_usage(usage("m2", status="failed"))
    assert ledger.get_wallet("acme").included == D("499.9")


def test_usage_pricing_and_routing_errors(ledger: LedgerApplication) -> None:
    open_acme(ledger)
    open_acme(ledger, "globex")
    ledger.link_sender(company_id="acme", waba_id="w1", actor="op", idempotency_key="l1")
    with pytest.raises(PriceMismatch):
        ledger.apply_usage(usage("m3", unit_price=D("0.04")))
    with pytest.raises(SenderNotLinked):
        ledger.apply_usage(usage("m4", company_id="globex"))
    with pytest.raises(SenderNotLinked):
        ledger.apply_usage(usage("m5", waba_id="unknown"))
    with pytest.raises(CurrencyMismatch):
        ledger.apply_usage(usage("m6", currency="EUR"))
    assert (
        ledger.apply_usage(usage("m7", unit_price=D("0.04")), trust_producer_price=True)
        is UsageOutcome.APPLIED
    )
    assert ledger.get_wallet("acme").included == D("499.92")
