"""Risk review of top-up requests: the rules, the request held in needs_review until an
operator releases or rejects it (each decision an event), and the exact 24-hour count."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from ledger_service.domain.errors import InvalidTransition
from ledger_service.domain.risk import (
    AMOUNT_ABOVE_THRESHOLD,
    NEW_COMPANY,
    TOO_MANY_REQUESTS,
    RiskRules,
    TopupVelocity,
)
from ledger_service.domain.topup import TopupRequest, TopupStatus
from ledger_service.service.ledger import LedgerApplication
from ledger_service.service.topups import request_auto_topup
from tests.fakes import InMemoryLedger
from tests.unit.test_application import open_acme

D = Decimal
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def ledger() -> Iterator[LedgerApplication]:
    app = InMemoryLedger()
    open_acme(app)
    yield app
    app.close()


def request(ledger: LedgerApplication, amount: str, key: str) -> dict[str, object]:
    return dict(
        ledger.request_topup(
            company_id="acme", amount=amount, currency="USD", actor="t", idempotency_key=key
        )
    )


def test_each_rule_fires_on_its_own() -> None:
    rules = RiskRules(amount_max={"USD": D(100)}, requests_per_day_max=3, company_age_min_days=7)
    week_old = NOW - timedelta(days=7)
    quiet = {"recent_requests": 3, "company_since": week_old, "now": NOW}
    assert rules.fired(amount=D(100), currency="USD", **quiet) == []  # type: ignore[arg-type]
    assert rules.fired(amount=D("100.01"), currency="USD", **quiet) == [  # type: ignore[arg-type]
        AMOUNT_ABOVE_THRESHOLD
    ]
    assert rules.fired(amount=D(10**6), currency="INR", **quiet) == []  # type: ignore[arg-type]
    assert rules.fired(
        amount=D(1), currency="USD", recent_requests=4, company_since=week_old, now=NOW
    ) == [TOO_MANY_REQUESTS]
    assert rules.fired(
        amount=D(1), currency="USD", recent_requests=1,
        company_since=week_old + timedelta(seconds=1), now=NOW,
    ) == [NEW_COMPANY]  # fmt: skip
    assert (
        RiskRules().fired(
            amount=D(10**9), currency="USD", recent_requests=10**6, company_since=NOW, now=NOW
        )
        == []
    )


def test_the_count_keeps_the_last_24_hours() -> None:
    velocity = TopupVelocity(company_id="acme")
    assert [velocity.count(NOW + timedelta(hours=h)) for h in (0, 1, 2)] == [1, 2, 3]
    assert velocity.count(NOW + timedelta(hours=24, seconds=1)) == 3  # the first fell out
    assert velocity.count(NOW + timedelta(hours=50)) == 1


def test_a_held_request_waits_for_an_operator(ledger: LedgerApplication) -> None:
    ledger.risk_rules = RiskRules(amount_max={"USD": D(100)})
    assert request(ledger, "100", "small")["status"] == "pending"
    held = request(ledger, "250", "big")
    assert held == {
        "topup_id": held["topup_id"], "status": "needs_review",
        "review_rules": [AMOUNT_ABOVE_THRESHOLD], "position": held["position"],
    }  # fmt: skip
    topup_id = UUID(str(held["topup_id"]))
    with pytest.raises(InvalidTransition):
        ledger.approve_topup(topup_id=topup_id, actor="op", idempotency_key="a1")
    ledger.release_topup(topup_id=topup_id, note="known customer", actor="op", idempotency_key="r")
    ledger.approve_topup(topup_id=topup_id, actor="op", idempotency_key="a2")
    assert ledger.get_topup(topup_id).status is TopupStatus.INVOICED
    kinds = [type(e).__name__ for e in ledger.events.get(topup_id)]  # type: ignore[attr-defined]
    assert kinds == ["Requested", "Flagged", "Released", "Approved", "Invoiced"]

    rejected = UUID(str(request(ledger, "300", "big-2")["topup_id"]))
    ledger.reject_topup(topup_id=rejected, reason="no", actor="op", idempotency_key="x")
    assert ledger.get_topup(rejected).status is TopupStatus.REJECTED


def test_more_than_n_a_day_are_held_and_auto_topups_are_not_reviewed(
    ledger: LedgerApplication,
) -> None:
    ledger.risk_rules = RiskRules(requests_per_day_max=2)
    statuses = [request(ledger, "10", f"r{i}")["status"] for i in range(4)]
    assert statuses == ["pending", "pending", "needs_review", "needs_review"]
    held = ledger.get_topup(UUID(str(request(ledger, "10", "r9")["topup_id"])))
    assert held.review_rules == [TOO_MANY_REQUESTS]
    wallet = ledger.get_wallet("acme")
    auto = request_auto_topup(
        ledger, wallet_id=wallet.id, trigger_version=7, auto_approve=True, amount=D(10)
    )
    assert auto["status"] == "invoiced", "counted, never held: the operators configured it"


def test_a_new_company_is_held_and_may_cancel(
    ledger: LedgerApplication,
) -> None:
    ledger.risk_rules = RiskRules(company_age_min_days=30)
    held = request(ledger, "5", "r1")
    assert (held["status"], held["review_rules"]) == ("needs_review", [NEW_COMPANY])
    topup = ledger.get_topup(UUID(str(held["topup_id"])))
    assert isinstance(topup, TopupRequest)
    ledger.cancel_topup(topup_id=topup.id, reason="", actor="t", idempotency_key="c")
    assert ledger.get_topup(topup.id).status is TopupStatus.CANCELLED
