"""Card payments without a database: minor units, the payment order's lifecycle, the webhook
signature check (real Stripe signing), the mapping of Stripe events, and the commands on an
in-memory ledger (a succeeded order credits once; a mismatch credits nothing)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st

from ledger_service.api.errors import ApiError
from ledger_service.api.payment_webhooks import payment_command, verified_event
from ledger_service.audit.export import audit_rows
from ledger_service.audit.verify import verify
from ledger_service.domain.errors import (
    InvalidAmount,
    InvalidArgument,
    InvalidTransition,
    PackAlreadyExists,
    PackNotFound,
)
from ledger_service.domain.invoice import invoice_lines
from ledger_service.domain.money import from_minor_units, to_minor_units
from ledger_service.domain.payment_order import PaymentOrder, PaymentOrderStatus
from ledger_service.domain.topup import TopupStatus
from ledger_service.service.ledger import LedgerApplication
from ledger_service.service.payments import ApplyPaymentEvent, MockPaymentProvider
from ledger_service.service.topups import RequestTopup
from tests.fakes import InMemoryLedger

D = Decimal
SECRET = "whsec_test_secret"


# -- minor units --------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(["USD", "JPY", "KWD", "INR"]))
def test_minor_units_round_trip(minor: int, currency: str) -> None:
    assert to_minor_units(from_minor_units(minor, currency), currency) == minor


def test_minor_units_follow_the_iso_4217_exponent() -> None:
    assert [to_minor_units(D("12.34"), "USD"), to_minor_units(D(500), "JPY")] == [1234, 500]
    assert from_minor_units(1234, "KWD") == D("1.234")
    with pytest.raises(InvalidAmount):
        to_minor_units(D("0.5"), "JPY")  # yen have no fraction
    with pytest.raises(InvalidArgument):
        to_minor_units(D(1), "XAU")  # gold has no minor unit
    with pytest.raises(InvalidArgument):
        to_minor_units(D(1), "ABC")


# -- the order's lifecycle ----------------------------------------------------------------


def new_order() -> PaymentOrder:
    return PaymentOrder.create(
        topup_id=uuid4(), company_id="acme", provider="mock", amount_total=D(40),
        currency="USD", actor="t",
    )  # fmt: skip


def test_a_declined_card_may_be_retried_in_the_same_checkout() -> None:
    order = new_order()
    order.fail(provider_event_id="e1", reason="declined", actor="w")
    order.succeed(provider_event_id="e2", actor="w")
    assert order.status is PaymentOrderStatus.SUCCEEDED
    assert order.provider_event_ids == ["e1", "e2"]


@pytest.mark.parametrize("final", ["succeed", "expire", "flag"])
def test_a_final_order_takes_no_further_event(final: str) -> None:
    order = new_order()
    {
        "succeed": lambda: order.succeed(provider_event_id="e1", actor="w"),
        "expire": lambda: order.expire(provider_event_id="e1", actor="w"),
        "flag": lambda: order.flag_for_review(
            provider_event_id="e1", amount_paid=D(1), currency_paid="USD", reason="r", actor="w"
        ),
    }[final]()
    for again in (
        lambda: order.succeed(provider_event_id="e2", actor="w"),
        lambda: order.fail(provider_event_id="e2", reason="x", actor="w"),
        lambda: order.expire(provider_event_id="e2", actor="w"),
    ):
        with pytest.raises(InvalidTransition):
            again()


def test_an_order_is_for_whole_minor_units() -> None:
    with pytest.raises(InvalidAmount):
        PaymentOrder.create(
            topup_id=uuid4(), company_id="acme", provider="mock", amount_total=D("10.001"),
            currency="USD", actor="t",
        )  # fmt: skip


# -- webhook signatures and events ---------------------------------------------------------


def signed(event: dict[str, Any], secret: str = SECRET, at: int | None = None) -> tuple[bytes, str]:
    payload = json.dumps(event)
    return payload.encode(), stripe.WebhookSignature.generate_signature_header(
        payload, secret, timestamp=at
    )


def completed(order_id: UUID | str, amount_minor: int = 4000, **extra: Any) -> dict[str, Any]:
    session = {"id": "cs_1", "client_reference_id": str(order_id), "amount_total": amount_minor,
               "currency": "usd", "payment_status": "paid"} | extra  # fmt: skip
    return {"id": f"evt_{uuid4().hex}", "type": "checkout.session.completed",
            "data": {"object": session}}  # fmt: skip


def test_a_genuine_signature_is_accepted_and_others_are_refused() -> None:
    event = completed(uuid4())
    payload, header = signed(event)
    assert verified_event(payload, header, SECRET).id == event["id"]
    cases = {
        "WEBHOOK_SIGNATURE_INVALID": [
            (payload, signed(event, secret="whsec_other")[1]),  # another secret
            (payload.replace(b"4000", b"9000"), header),  # tampered body
            (payload, None),  # no header
            (payload, "garbage"),
        ],
        "WEBHOOK_TIMESTAMP_TOO_OLD": [signed(event, at=int(time.time()) - 600)],
    }
    for code, attempts in cases.items():
        for body, signature in attempts:
            with pytest.raises(ApiError) as refused:
                verified_event(body, signature, SECRET)
            assert (refused.value.status, refused.value.code) == (401, code)


def test_stripe_events_map_to_the_ledger_command_or_to_nothing() -> None:
    order = uuid4()
    succeeded = payment_command(verified_event(*signed(completed(order)), SECRET), "stripe")
    assert succeeded is not None
    assert (succeeded.kind, succeeded.payment_order_id, succeeded.amount_minor) == (
        "succeeded", order, 4000
    )  # fmt: skip
    pending = completed(order, payment_status="unpaid")  # an async method: wait for it
    failed = {"id": "evt_f", "type": "payment_intent.payment_failed", "data": {"object": {
        "metadata": {"ledger_payment_order_id": str(order)},
        "last_payment_error": {"code": "card_declined", "message": "Declined"}}}}  # fmt: skip
    expired = {"id": "evt_x", "type": "checkout.session.expired",
               "data": {"object": {"client_reference_id": str(order)}}}  # fmt: skip
    other = {"id": "evt_o", "type": "customer.created", "data": {"object": {}}}
    foreign = {"id": "evt_n", "type": "payment_intent.payment_failed",  # not our checkout
               "data": {"object": {"metadata": {}}}}  # fmt: skip
    kinds = [
        (c.kind, c.reason) if c else None
        for c in (payment_command(verified_event(*signed(e), SECRET), "stripe")
                  for e in (pending, failed, expired, other, foreign))
    ]  # fmt: skip
    assert kinds == [None, ("failed", "Declined"), ("expired", ""), None, None]
    with pytest.raises(ApiError):  # names no order of ours
        payment_command(verified_event(*signed(completed("not-a-uuid")), SECRET), "stripe")


# -- commands on a ledger --------------------------------------------------------------------


@pytest.fixture
def ledger() -> Iterator[LedgerApplication]:
    app = InMemoryLedger()
    app.payment_provider = MockPaymentProvider("http://ledger.test")
    app.open_wallet(
        company_id="acme", currency="USD", included_quota="0", postpaid_limit="0",
        rate_card={"marketing": "1"}, actor="t", idempotency_key="o",
    )  # fmt: skip
    yield app
    app.close()


def card_topup(ledger: LedgerApplication, amount: str = "40") -> dict[str, Any]:
    return dict(ledger.request_topup(
        company_id="acme", amount=amount, currency="USD", payment_method="card", actor="tenant",
        idempotency_key=uuid4().hex,
    ))  # fmt: skip


def apply(ledger: LedgerApplication, order_id: str, event_id: str, **kwargs: Any) -> Any:
    params = {"provider": "mock", "payment_order_id": UUID(order_id), "kind": "succeeded",
              "amount_minor": 4000, "currency": "usd", "actor": "mock-webhook",
              "idempotency_key": event_id} | kwargs  # fmt: skip
    return ledger.handle(ApplyPaymentEvent(**params))


def test_a_card_topup_is_invoiced_with_an_order_and_credited_once(
    ledger: LedgerApplication,
) -> None:
    requested = card_topup(ledger)
    order = requested["payment_order"]
    assert requested["status"] == "invoiced"
    assert requested["invoice_number"]
    assert order["checkout_url"] == (
        f"http://ledger.test/v1/payments/mock/checkout/{order['payment_order_id']}"
    )
    first = apply(ledger, order["payment_order_id"], "evt_1")
    again = apply(ledger, order["payment_order_id"], "evt_1")  # redelivered
    other = apply(ledger, order["payment_order_id"], "evt_2")  # another event, same payment
    assert (first["outcome"], first["status"]) == ("applied", "succeeded")
    assert again == first
    assert (other["outcome"], other["position"]) == ("ignored", None)
    assert ledger.get_wallet("acme").prepaid == D(40)
    assert ledger.get_topup(UUID(requested["topup_id"])).status is TopupStatus.COMPLETED
    assert verify(ledger).ok


def test_verify_names_a_topup_paid_by_a_webhook_without_a_succeeded_order(
    ledger: LedgerApplication,
) -> None:
    requested = card_topup(ledger)
    ledger.mark_topup_paid(  # forged: recorded as a webhook's, but no order succeeded
        topup_id=UUID(requested["topup_id"]), payment_reference="mock:evt_forged",
        actor="mock-webhook", idempotency_key="forged",
    )  # fmt: skip
    report = verify(ledger)
    assert report.problems == [
        f"top-up {requested['topup_id']} was paid by a webhook without a succeeded order"
    ]


def test_a_delivery_that_lost_the_race_to_its_twin_answers_applied(
    ledger: LedgerApplication,
) -> None:
    """Two deliveries of one event both miss the command record; one commits first. The
    other then finds the order final, applied by its own event id: same answer, not ignored."""
    order = card_topup(ledger)["payment_order"]["payment_order_id"]
    apply(ledger, order, "evt_1")
    twin = ApplyPaymentEvent(
        provider="mock", payment_order_id=UUID(order), kind="succeeded", amount_minor=4000,
        currency="usd", actor="mock-webhook", idempotency_key="evt_1",
    )  # fmt: skip
    decision = twin.decide(ledger)  # as the runner does before it saves
    assert (decision.aggregates, decision.result["outcome"]) == ([], "applied")


@pytest.mark.parametrize(
    ("paid", "reason"),
    [({"amount_minor": 3999}, "paid 39.99 USD"), ({"currency": "eur"}, "paid 40 EUR")],
)
def test_a_payment_that_is_not_the_order_is_flagged_and_credits_nothing(
    ledger: LedgerApplication, paid: dict[str, Any], reason: str
) -> None:
    order = card_topup(ledger)["payment_order"]
    result = apply(ledger, order["payment_order_id"], "evt_1", **paid)
    assert result["status"] == "needs_review"
    flagged = ledger.get_payment_order(UUID(order["payment_order_id"]))
    assert flagged.failure_reason is not None
    assert flagged.failure_reason.startswith(reason)
    assert ledger.get_wallet("acme").prepaid == D(0)


def test_a_payment_for_a_topup_already_paid_is_flagged_not_credited_twice(
    ledger: LedgerApplication,
) -> None:
    requested = card_topup(ledger)
    ledger.mark_topup_paid(
        topup_id=UUID(requested["topup_id"]), payment_reference="bank", actor="op",
        idempotency_key="paid",
    )  # fmt: skip
    result = apply(ledger, requested["payment_order"]["payment_order_id"], "evt_1")
    assert result["status"] == "needs_review"
    assert ledger.get_wallet("acme").prepaid == D(40)


def test_a_declined_card_then_a_new_order_paid(ledger: LedgerApplication) -> None:
    requested = card_topup(ledger)
    first = requested["payment_order"]["payment_order_id"]
    apply(ledger, first, "evt_1", kind="failed", reason="declined")
    apply(ledger, first, "evt_2", kind="expired")
    second = ledger.create_payment_order(
        topup_id=UUID(requested["topup_id"]), actor="tenant", idempotency_key="again"
    )
    assert second["payment_order_id"] != first
    assert second["status"] == "created"
    assert apply(ledger, second["payment_order_id"], "evt_3")["status"] == "succeeded"
    assert ledger.get_wallet("acme").prepaid == D(40)


def test_without_a_provider_card_topups_are_refused(ledger: LedgerApplication) -> None:
    ledger.payment_provider = None
    with pytest.raises(Exception, match="card payments are not enabled"):
        card_topup(ledger)


# -- invoice lines: tax and fee --------------------------------------------------------------

percent = st.decimals(min_value=0, max_value=100, places=4)


@given(
    st.decimals(min_value=Decimal("0.01"), max_value=10**9, places=2), percent, percent,
    st.sampled_from(["USD", "INR", "KWD"]),
)  # fmt: skip
def test_invoice_total_is_credit_plus_tax_plus_fee_to_the_minor_unit(
    credit: Decimal, tax_percent: Decimal, fee_percent: Decimal, currency: str
) -> None:
    lines = invoice_lines(credit, currency, tax_percent=tax_percent, fee_percent=fee_percent)
    assert lines.total == lines.credit + lines.tax + lines.fee
    for part in (lines.tax, lines.fee, lines.total):
        to_minor_units(part, currency)  # whole minor units, or it raises
    assert abs(lines.tax - credit * tax_percent / 100) <= D("0.005")


def test_invoice_parts_round_half_even_to_the_minor_unit() -> None:
    # 18% of 0.25 = 0.045 -> 0.04 (half to even); 2.4% of 12.5 = 0.3 exactly; yen round to 1
    assert invoice_lines(D("0.25"), "USD", tax_percent=D(18), fee_percent=D(0)).tax == D("0.04")
    assert invoice_lines(D("12.5"), "USD", tax_percent=D(0), fee_percent=D("2.4")).fee == D("0.3")
    assert invoice_lines(D(125), "JPY", tax_percent=D(10), fee_percent=D(0)).tax == D(12)
    with pytest.raises(InvalidArgument):
        invoice_lines(D(1), "USD", tax_percent=D(101), fee_percent=D(0))


def test_a_taxed_card_topup_charges_the_total_and_books_each_part(
    ledger: LedgerApplication,
) -> None:
    ledger.topup_tax_percent, ledger.topup_fee_percent = D(18), D("2.4")
    requested = card_topup(ledger, amount="100")
    order = requested["payment_order"]
    assert order["amount_total"] == "120.4"  # 100 + 18 tax + 2.4 fee
    result = apply(ledger, order["payment_order_id"], "evt_1", amount_minor=12040)
    assert result["status"] == "succeeded"
    assert ledger.get_wallet("acme").prepaid == D(100)
    books = verify(ledger).trial_balance
    assert (books["tax_payable"], books["revenue:fees"]) == (D(18), D("2.4"))
    assert books["cash_clearing"] == D("-120.4")
    assert verify(ledger).ok


def test_an_invoice_topup_marked_paid_books_its_tax_too(ledger: LedgerApplication) -> None:
    ledger.topup_tax_percent = D(10)
    topup = UUID(ledger.request_topup(
        company_id="acme", amount="50", currency="USD", actor="t", idempotency_key="r",
    )["topup_id"])  # fmt: skip
    ledger.approve_topup(topup_id=topup, actor="op", idempotency_key="a")
    assert ledger.get_topup(topup).total == D(55)
    ledger.mark_topup_paid(topup_id=topup, payment_reference="bank", actor="op",
                           idempotency_key="p")  # fmt: skip
    books = verify(ledger).trial_balance
    assert (books["tax_payable"], books["cash_clearing"]) == (D(5), D(-55))


def test_a_topup_below_the_currency_minimum_is_refused(ledger: LedgerApplication) -> None:
    ledger.topup_minimums = {"USD": D(10)}
    with pytest.raises(InvalidAmount, match="smallest top-up in USD is 10"):
        card_topup(ledger, amount="9.99")
    assert card_topup(ledger, amount="10")["status"] == "invoiced"


# -- packs ----------------------------------------------------------------------------------


def test_a_paid_pack_credits_its_bonus_as_a_grant_once(ledger: LedgerApplication) -> None:
    ledger.define_pack(
        pack_name="starter", currency="USD", amount="40", bonus="5", actor="op",
        idempotency_key="p",
    )  # fmt: skip
    requested = dict(ledger.request_topup(
        company_id="acme", amount="40", currency="USD", pack="starter", payment_method="card",
        actor="tenant", idempotency_key="t",
    ))  # fmt: skip
    ledger.retire_pack(pack_name="starter", currency="USD", actor="op", idempotency_key="r")
    order = requested["payment_order"]["payment_order_id"]
    apply(ledger, order, "evt_1")
    apply(ledger, order, "evt_1")
    wallet = ledger.get_wallet("acme")
    assert (wallet.prepaid, wallet.granted, wallet.balance) == (D(40), D(5), D(45))
    [grant] = wallet.grants.values()
    assert grant.reference == f"pack:{requested['topup_id']}"
    assert verify(ledger).ok


def test_a_pack_is_bought_at_its_amount_and_only_while_offered(
    ledger: LedgerApplication,
) -> None:
    ledger.define_pack(pack_name="big", currency="USD", amount="100", bonus="20", actor="op",
                       idempotency_key="p")  # fmt: skip
    with pytest.raises(PackAlreadyExists):
        ledger.define_pack(pack_name="big", currency="USD", amount="90", bonus="0",
                           actor="op", idempotency_key="p2")  # fmt: skip
    with pytest.raises(InvalidArgument, match="pack 'big' is 100 USD"):
        card_topup_of(ledger, amount="90", pack="big")
    with pytest.raises(PackNotFound):
        card_topup_of(ledger, amount="100", pack="small")
    assert [p.name for p in ledger.packs().offered("USD")] == ["big"]
    assert ledger.packs().offered("INR") == []


def card_topup_of(ledger: LedgerApplication, **kwargs: Any) -> Any:
    params = {"company_id": "acme", "currency": "USD", "payment_method": "card",
              "actor": "tenant", "idempotency_key": uuid4().hex} | kwargs  # fmt: skip
    return ledger.request_topup(**params)


def test_a_wallets_own_tax_rate_replaces_the_services(ledger: LedgerApplication) -> None:
    ledger.topup_tax_percent = D(18)
    ledger.configure_wallet(company_id="acme", tax_percent="5", actor="op", idempotency_key="t")
    assert card_topup(ledger, amount="100")["payment_order"]["amount_total"] == "105"
    ledger.configure_wallet(company_id="acme", tax_percent="0", actor="op", idempotency_key="0")
    assert card_topup(ledger, amount="100")["payment_order"]["amount_total"] == "100"
    with pytest.raises(InvalidArgument):
        ledger.configure_wallet(company_id="acme", tax_percent="101", actor="op",
                                idempotency_key="x")  # fmt: skip


def test_the_audit_trail_names_the_provider_event_that_paid_a_topup(
    ledger: LedgerApplication,
) -> None:
    order = card_topup(ledger)["payment_order"]["payment_order_id"]
    apply(ledger, order, "evt_paid")
    [credit] = [r for r in audit_rows(ledger, "acme") if r["kind"] == "topup"]
    assert (credit["requested_by"], credit["reason"], credit["actor"]) == (
        "tenant", "paid: mock:evt_paid", "mock-webhook"
    )  # fmt: skip


def test_a_retried_decision_opens_the_same_order_so_the_same_checkout(
    ledger: LedgerApplication,
) -> None:
    """A version conflict re-runs a command's decision: the order id (the provider's
    idempotency key) must not change, or each retry would open another checkout."""
    command = RequestTopup(
        company_id="acme", amount=D(40), currency="USD", payment_method="card", actor="t",
        idempotency_key="k",
    )  # fmt: skip
    first, again = command.decide(ledger), command.decide(ledger)
    order_ids = [d.result["payment_order"]["payment_order_id"] for d in (first, again)]
    assert order_ids[0] == order_ids[1]
    other = RequestTopup(
        company_id="acme", amount=D(40), currency="USD", payment_method="card", actor="t",
        idempotency_key="k2",
    ).decide(ledger)  # fmt: skip
    assert other.result["payment_order"]["payment_order_id"] != order_ids[0]
