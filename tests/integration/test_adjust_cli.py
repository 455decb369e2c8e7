"""`ledger adjust` as a script runs it: the executable in a subprocess on a real PostgreSQL,
under the same four-eyes rule as the API."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from ledger_service.service.ledger import LedgerApplication
from tests.integration.test_audit import ledger
from tests.integration.test_audit_cli import run_ledger

pytestmark = pytest.mark.integration
__all__ = ["ledger"]  # the fixture, shared with test_audit


def test_adjust_request_then_approve_by_another_operator(
    ledger: LedgerApplication, fresh_database_url: str
) -> None:
    ledger.open_wallet(
        company_id="acme", currency="USD", actor="op", idempotency_key="open", postpaid_limit="0"
    )
    request = run_ledger(
        fresh_database_url, "adjust", "request", "--company", "acme", "--direction", "credit",
        "--amount", "12.50", "--bucket", "prepaid", "--reason", "goodwill",
        "--operator", "ops-a", "--idempotency-key", "adj-1",
    )  # fmt: skip
    assert request.returncode == 0, request.stderr
    pending = json.loads(request.stdout)
    assert (pending["status"], pending["amount"]) == ("pending_approval", "12.5")
    adjustment_id = pending["adjustment_id"]

    own = run_ledger(
        fresh_database_url, "adjust", "approve", adjustment_id, "--company", "acme",
        "--operator", "ops-a",
    )  # fmt: skip
    assert own.returncode == 1
    assert "NOT_PERMITTED" in own.stderr
    approved = run_ledger(
        fresh_database_url, "adjust", "approve", adjustment_id, "--company", "acme",
        "--operator", "ops-b",
    )  # fmt: skip
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["status"] == "applied"
    assert ledger.get_wallet("acme").prepaid == Decimal("12.5")

    bad = run_ledger(
        fresh_database_url, "adjust", "request", "--company", "acme", "--direction", "debit",
        "--amount", "twelve", "--bucket", "prepaid", "--reason", "x", "--operator", "ops-a",
    )  # fmt: skip
    assert (bad.returncode, "INVALID_AMOUNT" in bad.stderr) == (1, True)
    verify = run_ledger(fresh_database_url, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
