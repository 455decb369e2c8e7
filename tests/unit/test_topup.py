from decimal import Decimal
from uuid import uuid4

import pytest

from ledger_service.domain.errors import InvalidArgument, InvalidTransition
from ledger_service.domain.topup import TopupRequest, TopupStatus


def new_request() -> TopupRequest:
    return TopupRequest.request(
        company_id="acme",
        wallet_id=uuid4(),
        amount=Decimal(100),
        currency="USD",
        note="",
        actor="alice",
    )


def test_happy_path_records_past_tense_events_with_actors() -> None:
    topup = new_request()
    topup.approve(invoice_number="TOP-202611-acme-0001", actor="op")
    topup.mark_paid(payment_reference="bank-1", actor="op")
    events = topup.collect_events()
    assert [type(e).__name__ for e in events] == [
        "Requested",
        "Approved",
        "Invoiced",
        "Paid",
        "Completed",
    ]
    assert all(getattr(e, "actor", None) for e in events)
    assert topup.status is TopupStatus.COMPLETED


def _in(status: str) -> TopupRequest:
    topup = new_request()
    if status in ("invoiced", "completed"):
        topup.approve(invoice_number="TOP-202611-acme-0001", actor="op")
    if status == "completed":
        topup.mark_paid(payment_reference="bank-1", actor="op")
    if status == "rejected":
        topup.reject(reason="no", actor="op")
    if status == "cancelled":
        topup.cancel(reason="", actor="alice")
    return topup


ALLOWED = {
    ("pending", "approve"),
    ("pending", "reject"),
    ("pending", "cancel"),
    ("invoiced", "cancel"),
    ("invoiced", "mark_paid"),
}
STATUSES = ["pending", "invoiced", "completed", "rejected", "cancelled"]
ACTIONS = ["approve", "reject", "cancel", "mark_paid"]


def _do(topup: TopupRequest, action: str) -> None:
    if action == "approve":
        topup.approve(invoice_number="TOP-202611-acme-0002", actor="op")
    elif action == "reject":
        topup.reject(reason="too large", actor="op")
    elif action == "cancel":
        topup.cancel(reason="", actor="op")
    else:
        topup.mark_paid(payment_reference="bank-2", actor="op")


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_transition_outside_the_lifecycle_is_refused(status: str, action: str) -> None:
    topup = _in(status)
    assert topup.status.value == status
    if (status, action) in ALLOWED:
        _do(topup, action)
    else:
        version = topup.version
        with pytest.raises(InvalidTransition, match=f"is {status}"):
            _do(topup, action)
        assert topup.version == version


def test_reject_needs_a_reason() -> None:
    with pytest.raises(InvalidArgument):
        new_request().reject(reason="  ", actor="op")
