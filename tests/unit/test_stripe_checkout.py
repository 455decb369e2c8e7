"""The Stripe provider against a stand-in of Stripe's API on a loopback port (real HTTP, the
official client): what a checkout session is created with, and what a failure leaves."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import pytest

from ledger_service.config import Settings
from ledger_service.domain.errors import InvalidArgument, PaymentProviderUnavailable
from ledger_service.service.ledger import LedgerApplication
from ledger_service.service.stripe_checkout import StripeCheckoutProvider
from tests.fakes import InMemoryLedger


class FakeStripe(BaseHTTPRequestHandler):
    """Answers ``POST /v1/checkout/sessions`` as Stripe does (or fails, when told to)."""

    requests: list[tuple[dict[str, list[str]], dict[str, str]]]
    fail = False
    refuse = False

    def do_POST(self) -> None:  # the name http.server dispatches to
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        type(self).requests.append((parse_qs(body), dict(self.headers)))
        if type(self).refuse:
            error = {"type": "invalid_request_error", "message": "Amount too small"}
            self._answer(400, {"error": error})
            return
        if self.path != "/v1/checkout/sessions" or type(self).fail:
            self._answer(500, {"error": {"type": "api_error", "message": "down"}})
            return
        self._answer(200, {"id": "cs_test_1", "object": "checkout.session",
                           "url": "https://checkout.stripe.com/c/pay/cs_test_1"})  # fmt: skip

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stripe_api() -> Iterator[str]:
    FakeStripe.requests, FakeStripe.fail, FakeStripe.refuse = [], False, False
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeStripe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def ledger(stripe_api: str) -> Iterator[LedgerApplication]:
    app = InMemoryLedger()
    app.payment_provider = StripeCheckoutProvider(
        "sk_test_fake", success_url="https://tenant.example/paid",
        cancel_url="https://tenant.example/cancelled", api_base=stripe_api,
    )  # fmt: skip
    app.open_wallet(
        company_id="acme", currency="USD", included_quota="0", postpaid_limit="0",
        rate_card={"marketing": "1"}, actor="t", idempotency_key="o",
    )  # fmt: skip
    yield app
    app.close()


def request_card_topup(ledger: LedgerApplication) -> dict[str, Any]:
    return dict(ledger.request_topup(
        company_id="acme", amount="40.5", currency="USD", payment_method="card", actor="t",
        idempotency_key="card",
    ))  # fmt: skip


def test_a_card_topup_opens_a_stripe_checkout_session_for_the_order(
    ledger: LedgerApplication,
) -> None:
    order = request_card_topup(ledger)["payment_order"]
    assert (order["provider"], order["checkout_url"]) == (
        "stripe", "https://checkout.stripe.com/c/pay/cs_test_1"
    )  # fmt: skip
    [(form, headers)] = FakeStripe.requests
    order_id = order["payment_order_id"]
    assert {k: v[0] for k, v in form.items()} == {
        "mode": "payment",
        "client_reference_id": order_id,
        "line_items[0][quantity]": "1",
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][unit_amount]": "4050",
        "line_items[0][price_data][product_data][name]": "Prepaid credit (acme)",
        "metadata[ledger_payment_order_id]": order_id,
        "metadata[topup_id]": order["topup_id"],
        "payment_intent_data[metadata][ledger_payment_order_id]": order_id,
        "payment_intent_data[metadata][topup_id]": order["topup_id"],
        "success_url": "https://tenant.example/paid",
        "cancel_url": "https://tenant.example/cancelled",
    }
    assert headers["Authorization"] == "Bearer sk_test_fake"
    assert headers["Idempotency-Key"] == f"ledger-payment-order-{order_id}"
    stored = ledger.get_payment_order(UUID(order_id))
    assert stored.provider_reference == "cs_test_1"


def test_when_stripe_fails_the_request_fails_and_nothing_is_written(
    ledger: LedgerApplication,
) -> None:
    FakeStripe.fail = True
    head = ledger.recorder.max_notification_id()
    with pytest.raises(PaymentProviderUnavailable):
        request_card_topup(ledger)
    assert ledger.recorder.max_notification_id() == head


def test_a_request_stripe_refuses_is_422_and_currencies_stripe_counts_otherwise_are_refused(
    ledger: LedgerApplication,
) -> None:
    FakeStripe.refuse = True
    with pytest.raises(InvalidArgument, match="Stripe refused the checkout: Amount too small"):
        request_card_topup(ledger)
    assert len(FakeStripe.requests) == 1  # not retried
    isk = InMemoryLedger()
    isk.payment_provider = ledger.payment_provider
    isk.open_wallet(company_id="is", currency="ISK", included_quota="0", postpaid_limit="0",
                    rate_card={"m": "1"}, actor="t", idempotency_key="o")  # fmt: skip
    with pytest.raises(InvalidArgument, match="card payments in ISK are not supported"):
        isk.request_topup(company_id="is", amount="1000", currency="ISK",
                          payment_method="card", actor="t", idempotency_key="c")  # fmt: skip
    assert len(FakeStripe.requests) == 1  # Stripe was not asked
    isk.close()


def test_the_stripe_provider_needs_its_keys_and_urls() -> None:
    with pytest.raises(ValueError, match="LEDGER_PAYMENTS_STRIPE_API_KEY"):
        Settings(payments_provider="stripe")
    Settings(
        payments_provider="stripe", payments_stripe_api_key="sk", payments_success_url="u",
        payments_cancel_url="c", payments_stripe_webhook_secret="whsec",
    )  # fmt: skip


def test_the_mock_provider_is_refused_in_production() -> None:
    production = {"environment": "production", "jwt_secret": "x" * 32,
                  "database_url": "postgresql://db/ledger"}  # fmt: skip
    with pytest.raises(ValueError, match="PAYMENTS_PROVIDER=mock"):
        Settings(**production)
    assert Settings(**production, payments_provider="none").payments_provider == "none"
