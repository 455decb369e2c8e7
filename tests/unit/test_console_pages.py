"""What the console's pages show for given read-model rows, and its signed tokens."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from decimal import Decimal as D
from typing import Any
from uuid import uuid4

import pytest

from ledger_service.console.pages import (
    banner_of,
    topup_actions,
    topup_view,
    usage_chart,
    wallet_view,
)
from ledger_service.console.sign_in import ConsoleSigner, LinkRefused, Session
from ledger_service.console.wallet_settings_pages import parse_rate_card, rate_card_text
from ledger_service.console.web import PageError

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def wallet_row(**overrides: Any) -> dict[str, Any]:
    row = {
        "company_id": "acme", "currency": "USD", "balance": D("12.5000000"),
        "available": D("62.5"), "held": D("0"), "included": D("2.5"), "granted": D("0"),
        "prepaid": D("10"), "postpaid_used": D("0"), "postpaid_limit": D("50"),
        "senders": ["w2", "w1"], "alerts_active": [], "updated_at": NOW, "position": 7,
    }  # fmt: skip
    return row | overrides


def test_money_is_shown_as_stored_without_float_round_trips() -> None:
    view = wallet_view(wallet_row(prepaid=D("0.1000000"), balance=D("0.30000000000000004")))
    assert view.balance == "0.30000000000000004"
    assert [b.amount for b in view.buckets] == ["2.5", "0", "0.1", "0"]
    assert view.senders == ["w1", "w2"]
    assert "50 USD limit" in view.buckets[3].explanation


def test_below_zero_outranks_low_balance_and_both_go_when_the_balance_recovers() -> None:
    below = banner_of(wallet_row(balance=D("-3"), alerts_active=["low_balance_warning"]))
    assert below is not None
    assert below.kind == "below-zero"
    assert "-3 USD" in below.message
    low = banner_of(wallet_row(alerts_active=["low_balance_warning"]))
    assert low is not None
    assert low.kind == "low-balance"
    assert banner_of(wallet_row()) is None


def test_each_viewer_gets_the_actions_the_status_allows() -> None:
    assert topup_actions("pending", operator=False) == ("cancel",)
    assert topup_actions("invoiced", operator=False) == ()
    assert topup_actions("pending", operator=True) == ("approve", "reject", "cancel")
    assert topup_actions("invoiced", operator=True) == ("mark-paid", "cancel")
    assert topup_actions("completed", operator=True) == ()


def test_a_top_up_shows_its_invoice_total() -> None:
    row = {
        "topup_id": uuid4(), "company_id": "acme", "status": "invoiced", "amount": D("100"),
        "tax": D("18"), "fee": D("2.40"), "currency": "INR", "note": None,
        "invoice_number": "TOP-202611-acme-1", "payment_reference": None, "reason": None,
        "requested_by": "u", "requested_at": NOW, "review_rules": [],
    }  # fmt: skip
    view = topup_view(row, operator=True)
    assert (view.amount, view.total, view.note) == ("100", "120.4", "")
    assert view.actions == ("mark-paid", "cancel")
    held = topup_view(
        row | {"status": "needs_review", "review_rules": ["new_company"]}, operator=True
    )
    assert (held.actions, held.review_rules) == (("release", "reject", "cancel"), ("new_company",))
    assert topup_view(row | {"status": "needs_review"}, operator=False).actions == ("cancel",)


def test_the_usage_chart_has_a_bar_for_every_day_scaled_to_the_busiest() -> None:
    rows = [
        {"key": "2026-11-20", "amount": D("1.5"), "units": 1},
        {"key": "2026-11-23", "amount": D("6"), "units": 4},
    ]
    chart = usage_chart(rows, last_day=date(2026, 11, 23), days=30)
    assert len(chart.bars) == 30
    assert chart.bars[-1].day == "2026-11-23"
    assert chart.bars[-1].height_percent == 100
    assert chart.bars[-4].height_percent == 25
    assert chart.bars[0].height_percent == 0
    assert (chart.total, chart.units) == ("7.5", 5)
    assert usage_chart([], last_day=date(2026, 11, 23)).total == "0"


def test_login_links_are_signed_and_expire() -> None:
    signer = ConsoleSigner("secret-one", session_ttl_s=60)
    token = signer.mint_link(subject="u", company_id="acme", scopes=("billing.view",), ttl_s=30)
    link = signer.read_link(token)
    assert (link.subject, link.company_id, link.scopes) == ("u", "acme", ("billing.view",))
    with pytest.raises(LinkRefused, match="expired"):
        signer.read_link(token, now=time.time() + 31)
    with pytest.raises(LinkRefused, match="not valid"):
        ConsoleSigner("secret-two", session_ttl_s=60).read_link(token)
    with pytest.raises(LinkRefused):
        signer.read_link(signer.session_cookie(Session("s", "u", "acme", ("billing.view",))))


@pytest.mark.parametrize(
    ("company", "scopes"),
    [
        (None, ("billing.view",)),
        ("acme", ("billing.usage",)),
        ("acme", ()),
        ("bad id", ("billing.view",)),
    ],
)
def test_login_links_refuse_what_the_api_would_refuse(
    company: str | None, scopes: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError):
        ConsoleSigner("s", session_ttl_s=60).mint_link(
            subject="u", company_id=company, scopes=scopes, ttl_s=30
        )


def test_sessions_and_csrf_tokens_are_bound_to_their_secret_and_session() -> None:
    signer = ConsoleSigner("secret", session_ttl_s=60)
    session = Session("sid-1", "u", "acme", ("billing.view",))
    assert signer.read_session(signer.session_cookie(session)) == session
    assert signer.read_session("forged") is None
    assert signer.read_session(None) is None
    assert (
        ConsoleSigner("other", session_ttl_s=60).read_session(signer.session_cookie(session))
        is None
    )
    token = signer.csrf_token(session)
    assert signer.csrf_valid(session, token)
    assert not signer.csrf_valid(Session("sid-2", "u", "acme", ("billing.view",)), token)
    assert not signer.csrf_valid(session, None)
    assert not signer.csrf_valid(session, "sid-1")


def test_the_rate_card_form_round_trips_and_names_a_bad_line() -> None:
    text = rate_card_text('{"utility": "0.0200000", "marketing": "1.5000000"}')
    assert text == "marketing = 1.5\nutility = 0.02"
    assert parse_rate_card(text + "\n\n") == {"marketing": "1.5", "utility": "0.02"}
    with pytest.raises(PageError, match="line 2"):
        parse_rate_card("a = 1\nb 2")


def test_the_console_has_its_own_secret_when_set() -> None:
    from ledger_service.config import Settings

    assert Settings(jwt_secret="a" * 40).console_signing_secret == "a" * 40
    own = Settings(jwt_secret="a" * 40, console_secret="c" * 40)
    assert own.console_signing_secret == "c" * 40
    with pytest.raises(ValueError, match="LEDGER_CONSOLE_SECRET"):
        Settings(
            environment="production", jwt_secret="a" * 40, console_secret="short",
            database_url="postgresql://db/ledger", payments_provider="none",
        )  # fmt: skip
