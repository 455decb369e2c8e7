"""The top-up notification a mailer turns into an invoice email: money, and the units bought."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

from ledger_service.domain.topup import TopupRequest
from ledger_service.reactions.notifications import topup_cloudevent

D = Decimal


def invoiced(credits: bool) -> tuple[TopupRequest, object]:
    topup = TopupRequest.request(
        company_id="acme", wallet_id=uuid4(), amount=D(100), currency="INR", note="",
        actor="t",
    )  # fmt: skip
    if credits:
        topup.quote_credits(unit="CREDIT", rate=D(10), credits=D(1000))
    topup.approve(invoice_number="TOP-1", actor="op")
    return topup, topup.collect_events()[-1]


def test_an_invoice_in_money_for_a_wallet_in_credits_shows_both() -> None:
    topup, event = invoiced(credits=True)
    key, cloudevent = topup_cloudevent(7, event, topup)
    data = cloudevent["data"]
    assert (key, cloudevent["type"]) == ("acme", "ledger.topup.invoiced")
    assert (data["amount"], data["total"], data["currency"]) == ("100", "100", "INR")
    assert (data["credits"], data["credit_unit"], data["credit_rate"]) == ("1000", "CREDIT", "10")
    money_topup, money_event = invoiced(credits=False)
    _, plain = topup_cloudevent(7, money_event, money_topup)
    assert "credits" not in plain["data"]
