"""`ledger refund` as a script runs it: the executable in a subprocess on a real PostgreSQL."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from ledger_service.domain.usage import Usage
from ledger_service.service.ledger import LedgerApplication
from tests.integration.test_audit import ledger
from tests.integration.test_audit_cli import run_ledger

pytestmark = pytest.mark.integration
__all__ = ["ledger"]  # the fixture, shared with test_audit


def test_refund_gives_a_charge_back_once_and_verify_agrees(
    ledger: LedgerApplication, fresh_database_url: str
) -> None:
    ledger.open_wallet(
        company_id="acme", currency="USD", actor="op", idempotency_key="open",
        postpaid_limit="10", rate_card={"marketing": "0.5"},
    )  # fmt: skip
    ledger.link_sender(company_id="acme", waba_id="w1", actor="op", idempotency_key="l")
    ledger.apply_usage(Usage("//wa", "msg-1", "acme", "w1", "c", "marketing", "delivered", 3))
    assert ledger.get_wallet("acme").postpaid_used == Decimal("1.5")
    args = ("refund", "--company", "acme", "--source", "//wa", "--id", "msg-1",
            "--reason", "undelivered", "--operator", "ops-a")  # fmt: skip

    done = run_ledger(fresh_database_url, *args)
    assert done.returncode == 0, done.stderr
    refund = json.loads(done.stdout)
    assert (refund["amount"], refund["returned_to"]) == ("1.5", {"postpaid": "1.5"})
    again = run_ledger(fresh_database_url, *args)
    assert (again.returncode, "USAGE_ALREADY_REFUNDED" in again.stderr) == (1, True)
    unknown = run_ledger(fresh_database_url, *args[:6], "msg-2", *args[7:])
    assert (unknown.returncode, "USAGE_NOT_FOUND" in unknown.stderr) == (1, True)
    ledger.evict([ledger.get_wallet("acme").id])
    assert ledger.get_wallet("acme").postpaid_used == 0
    verify = run_ledger(fresh_database_url, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
