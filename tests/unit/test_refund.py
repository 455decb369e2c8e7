"""Usage refunds with the in-memory store: the charge given back where it was drawn from, once,
by an operator or by a late ``failed`` status; and ``ledger verify`` checking both."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from ledger_service.audit.verify import verify
from ledger_service.domain.entries import split_refund
from ledger_service.domain.errors import (
    UsageAlreadyRefunded,
    UsageNotFound,
    UsageNotRefundable,
)
from ledger_service.domain.refund import refund_id
from ledger_service.domain.usage import Usage, UsageOutcome
from ledger_service.domain.wallet import Wallet
from ledger_service.service.ledger import LedgerApplication
from tests.fakes import InMemoryLedger

D = Decimal
SOURCE = "//messaging/whatsapp"


def test_a_refund_gives_each_part_back_in_reverse_drain_order() -> None:
    drawn = {"included": D(5), "prepaid": D(4), "postpaid": D(2), "overage": D(1)}
    # The debt the usage made is still owed: repaid first, then prepaid, then included.
    assert split_refund(drawn, postpaid_used=D(3)) == {
        "included": D(5),
        "postpaid": D(3),
        "prepaid": D(4),
    }
    # Repaid since (a top-up): what was drawn on credit is prepaid money again.
    assert split_refund(drawn, postpaid_used=D(0)) == {
        "included": D(5),
        "postpaid": D(0),
        "prepaid": D(7),
    }
    # More debt since: the prepaid part repays it too (never prepaid money and debt at once).
    assert split_refund(drawn, postpaid_used=D(10)) == {
        "included": D(5),
        "postpaid": D(7),
        "prepaid": D(0),
    }


@pytest.fixture
def ledger() -> Iterator[LedgerApplication]:
    app = InMemoryLedger()
    for company in ("acme", "peer"):
        app.open_wallet(
            company_id=company,
            currency="USD",
            included_quota="1",
            postpaid_limit="10",
            rate_card={"marketing": "0.5"},
            actor="t",
            idempotency_key="o",
        )
        app.link_sender(company_id=company, waba_id=f"{company}-w1", actor="t", idempotency_key="l")
    yield app
    app.close()


def usage(
    event_id: str, *, status: str = "delivered", units: int = 4, company: str = "acme"
) -> Usage:
    return Usage(SOURCE, event_id, company, f"{company}-w1", "c1", "marketing", status, units)


def refund(ledger: LedgerApplication, event_id: str, key: str, company: str = "acme") -> object:
    return ledger.refund_usage(
        company_id=company,
        usage_source=SOURCE,
        usage_id=event_id,
        reason="customer reported it undelivered",
        actor="ops-a",
        idempotency_key=key,
    )


def buckets(wallet: Wallet) -> tuple[Decimal, Decimal, Decimal]:
    return (wallet.included, wallet.prepaid, wallet.postpaid_used)


def test_an_operator_refunds_a_charge_into_its_buckets_once(ledger: LedgerApplication) -> None:
    ledger.apply_usage(usage("m1", units=6))  # 3.00: 1 included + 2 on credit
    assert buckets(ledger.get_wallet("acme")) == (0, 0, 2)

    result = refund(ledger, "m1", "r1")

    assert buckets(ledger.get_wallet("acme")) == (1, 0, 0)
    assert result == {
        "refund_id": str(refund_id(SOURCE, "m1")),
        "company_id": "acme",
        "usage_source": SOURCE,
        "usage_id": "m1",
        "amount": "3",
        "returned_to": {"included": "1", "postpaid": "2"},
        "reason": "customer reported it undelivered",
        "refunded_by": "ops-a",
        "position": result["position"],  # type: ignore[index]
    }
    assert refund(ledger, "m1", "r1") == result  # the same request, answered from its record
    with pytest.raises(UsageAlreadyRefunded):
        refund(ledger, "m1", "r2")
    assert buckets(ledger.get_wallet("acme")) == (1, 0, 0)
    report = verify(ledger)
    assert report.ok, report.problems


def test_unknown_foreign_and_unbilled_usage_cannot_be_refunded(ledger: LedgerApplication) -> None:
    ledger.apply_usage(usage("m1"))
    ledger.apply_usage(usage("f1", status="failed"))
    with pytest.raises(UsageNotFound):
        refund(ledger, "nope", "r1")
    with pytest.raises(UsageNotFound):  # another company's usage looks like none
        refund(ledger, "m1", "r2", company="peer")
    with pytest.raises(UsageNotRefundable, match="not billed"):
        refund(ledger, "f1", "r3")


def test_a_late_failed_status_refunds_once_even_when_redelivered(
    ledger: LedgerApplication,
) -> None:
    assert ledger.apply_usage(usage("m1")) is UsageOutcome.APPLIED
    assert buckets(ledger.get_wallet("acme")) == (0, 0, 1)

    assert ledger.apply_usage(usage("m1", status="failed")) is UsageOutcome.REFUNDED
    assert ledger.apply_usage(usage("m1", status="failed")) is UsageOutcome.DUPLICATE
    assert ledger.apply_usage(usage("m1")) is UsageOutcome.DUPLICATE  # never billed again

    assert buckets(ledger.get_wallet("acme")) == (1, 0, 0)
    with pytest.raises(UsageAlreadyRefunded):
        refund(ledger, "m1", "r1")
    report = verify(ledger)
    assert report.ok, report.problems


def test_late_failed_status_refunds_can_be_switched_off(ledger: LedgerApplication) -> None:
    ledger.apply_usage(usage("m1"))
    outcome = ledger.apply_usage(usage("m1", status="failed"), refund_failed_usage=False)
    assert outcome is UsageOutcome.DUPLICATE
    assert buckets(ledger.get_wallet("acme")) == (0, 0, 1)


def test_a_failure_report_naming_another_company_refunds_nothing(
    ledger: LedgerApplication,
) -> None:
    ledger.apply_usage(usage("m1"))
    other = usage("m1", status="failed", company="peer")
    assert ledger.apply_usage(other) is UsageOutcome.DUPLICATE
    assert buckets(ledger.get_wallet("acme")) == (0, 0, 1)


def test_verify_reports_a_refund_credit_without_a_refund(ledger: LedgerApplication) -> None:
    ledger.apply_usage(usage("m1"))
    ledger.credit_wallet(
        company_id="acme",
        amount="2",
        kind="refund",
        reference=f"refund:{SOURCE}#m1",
        actor="ops",
        idempotency_key="forged",
    )
    report = verify(ledger)
    assert f"refund:{SOURCE}#m1 was credited without a refund" in report.problems
