"""The console in a real browser, against a real ``ledger run``: the whole top-up lifecycle,
banners, usage from Kafka, isolation, CSRF and one-time links, as people would click them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ARTIFACTS, Ledger, PageFactory
from tests.integration.ingestion_support import produce, usage_event

pytestmark = pytest.mark.integration
README_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console-wallet.png"


def open_wallet(ledger: Ledger, company: str, senders: list[str]) -> None:
    """A wallet with no funds, 50 USD of postpaid credit and two senders."""
    with ledger.api() as api:
        opened = api.post(
            "/v1/wallets",
            json={"company_id": company, "currency": "USD", "postpaid_limit": "50",
                  "included_quota": "0", "rate_card": {"marketing": "1.5"}},
            headers={"Idempotency-Key": f"open-{company}"},
        )  # fmt: skip
        assert opened.status_code == 201, opened.text
        for sender in senders:
            linked = api.post(
                f"/v1/wallets/{company}/senders",
                json={"waba_id": sender},
                headers={"Idempotency-Key": f"link-{sender}"},
            )
            assert linked.status_code in (200, 201), linked.text


def sign_in(page: Page, url: str) -> None:
    page.goto(url)
    page.get_by_role("button", name="Sign in").click()


def publish_usage(ledger: Ledger, company: str, counts: dict[str, int]) -> None:
    _send(ledger, [usage_event(company, s) for s, n in counts.items() for _ in range(n)])


def _send(ledger: Ledger, messages: list[tuple[bytes, bytes]]) -> None:
    """From another thread: Playwright's sync API runs an event loop in this one."""
    with ThreadPoolExecutor(1) as thread:
        sent = thread.submit(asyncio.run, produce(ledger.kafka, "ledger.usage.v1", messages))
        sent.result(timeout=120)


def test_a_tenant_and_an_operator_run_a_top_up_and_read_usage(
    ledger: Ledger, new_page: PageFactory
) -> None:
    company = f"acme-{uuid.uuid4().hex[:8]}"
    open_wallet(ledger, company, [f"{company}-w1", f"{company}-w2"])
    publish_usage(ledger, company, {f"{company}-w1": 3, f"{company}-w2": 1})  # 6 USD of usage

    tenant = new_page()
    sign_in(tenant, ledger.login_link("--company", company, "--scopes", "billing.view"))
    expect(tenant.get_by_role("heading", name=f"Wallet of {company}")).to_be_visible()
    tenant.wait_for_function("document.querySelector('[data-testid=balance]')", timeout=5000)
    for _ in range(50):  # usage is consumed and projected within moments
        if tenant.get_by_test_id("balance").inner_text() == "-6 USD":
            break
        tenant.wait_for_timeout(200)
        tenant.reload()
    expect(tenant.get_by_test_id("balance")).to_have_text("-6 USD")
    expect(tenant.locator("[data-banner=below-zero]")).to_be_visible()
    expect(tenant.get_by_test_id("burn")).to_have_text("6 USD")  # the last 24 hours
    expect(tenant.get_by_text(f"{company}-w2")).to_be_visible()

    tenant.get_by_role("link", name="Request a top-up").click()
    tenant.get_by_label("Amount (USD)").fill("100")
    tenant.get_by_label("Note (optional)").fill("November")
    tenant.get_by_role("button", name="Request top-up").click()
    expect(tenant.get_by_role("status")).to_contain_text("Top-up requested")
    expect(tenant.locator("tbody tr")).to_have_count(1)
    expect(tenant.locator(".status")).to_have_text("pending")

    operator = new_page()
    sign_in(operator, ledger.login_link("--sub", "ops", "--scopes", "billing.manage"))
    expect(operator.get_by_role("heading", name="Top-up queue")).to_be_visible()
    operator.get_by_label("Company").fill(company)
    operator.get_by_role("button", name="Filter").click()
    operator.get_by_role("button", name="Approve").click()
    expect(operator.get_by_role("status")).to_contain_text("invoice is issued")
    invoice = operator.get_by_test_id("invoice").first
    expect(invoice).to_contain_text(re.compile(r"TOP-\d{6}-"))
    operator.get_by_label("Payment reference").fill("bank-transfer-77")
    operator.get_by_role("button", name="Mark paid").click()
    expect(operator.get_by_role("status")).to_contain_text("wallet is credited")

    tenant.goto(f"{ledger.url}/console/companies/{company}")
    expect(tenant.get_by_test_id("balance")).to_have_text("94 USD")
    expect(tenant.locator(".banner")).to_have_count(0)
    tenant.screenshot(path=ARTIFACTS / "readme-wallet.png", full_page=True)
    if os.environ.get("LEDGER_UPDATE_DOCS_SCREENSHOT") == "1":  # the README's picture
        shutil.copyfile(ARTIFACTS / "readme-wallet.png", README_SCREENSHOT)

    tenant.get_by_role("link", name="Usage", exact=True).click()
    expect(tenant.get_by_test_id("usage-total")).to_have_text("6 USD")
    expect(tenant.get_by_test_id("usage-burn")).to_have_text("6 USD")
    expect(tenant.locator(".bar[data-amount='6']")).to_have_count(1)
    tenant.get_by_label("Sender").select_option(f"{company}-w2")
    tenant.get_by_role("button", name="Show").click()
    expect(tenant.get_by_test_id("usage-total")).to_have_text("1.5 USD")

    tenant.get_by_role("link", name="Transactions").click()
    tenant.get_by_label("Kind").select_option("usage")
    tenant.get_by_role("button", name="Filter").click()
    expect(tenant.locator("tr[data-entry]")).to_have_count(4)
    with tenant.expect_download() as download:
        tenant.get_by_role("link", name="Download CSV").click()
    rows = Path(download.value.path()).read_text().strip().splitlines()
    assert len(rows) == 5  # the header and the four usage entries
    assert all(",usage,-1.5,USD," in row for row in rows[1:])


def test_a_tenant_cannot_reach_operator_pages_or_another_company(
    ledger: Ledger, new_page: PageFactory
) -> None:
    company, other = f"own-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    open_wallet(ledger, company, [])
    open_wallet(ledger, other, [])
    page = new_page()
    sign_in(page, ledger.login_link("--company", company))
    for path in ("/console/ops/topups", f"/console/companies/{other}"):
        response = page.goto(f"{ledger.url}{path}")
        assert response is not None
        assert response.status == 404
        expect(page.get_by_role("alert")).to_contain_text("NOT_FOUND")
    expect(page.get_by_text("Request id")).to_be_visible()


def test_a_form_without_its_csrf_token_is_refused(ledger: Ledger, new_page: PageFactory) -> None:
    company = f"csrf-{uuid.uuid4().hex[:8]}"
    open_wallet(ledger, company, [])
    page = new_page()
    sign_in(page, ledger.login_link("--company", company))
    page.goto(f"{ledger.url}/console/companies/{company}/topups")
    page.locator("form[action$='/topups'] input[name=csrf_token]").evaluate("e => e.remove()")
    page.get_by_label("Amount (USD)").fill("10")
    page.get_by_role("button", name="Request top-up").click()
    expect(page.get_by_role("alert")).to_contain_text("CSRF_TOKEN_INVALID")
    page.goto(f"{ledger.url}/console/companies/{company}/topups")
    expect(page.get_by_text("No top-up requests yet")).to_be_visible()


def test_used_and_expired_login_links_are_refused(ledger: Ledger, new_page: PageFactory) -> None:
    company = f"links-{uuid.uuid4().hex[:8]}"
    open_wallet(ledger, company, [])
    link = ledger.login_link("--company", company)
    first = new_page()
    sign_in(first, link)
    expect(first.get_by_role("heading", name=f"Wallet of {company}")).to_be_visible()
    second = new_page()
    sign_in(second, link)
    expect(second.get_by_role("alert")).to_contain_text("LOGIN_LINK_USED")
    expired = ledger.login_link("--company", company, "--ttl", "1s")
    third = new_page()
    third.wait_for_timeout(1500)
    third.goto(expired)
    expect(third.get_by_role("alert")).to_contain_text("expired")


def test_an_operator_replays_a_dead_letter_once_its_cause_is_fixed(
    ledger: Ledger, new_page: PageFactory
) -> None:
    company = f"late-{uuid.uuid4().hex[:8]}"
    sender = f"{company}-w1"
    key, value = usage_event(company, sender)
    event_id = json.loads(value)["id"]
    _send(ledger, [(key, value)])  # no wallet yet: dead-lettered
    operator = new_page()
    sign_in(operator, ledger.login_link("--sub", "ops", "--scopes", "billing.manage"))
    row = operator.locator("tr", has_text=event_id)
    for _ in range(50):
        operator.goto(f"{ledger.url}/console/ops/dead-letters")
        if row.count():
            break
        operator.wait_for_timeout(200)
    expect(row).to_contain_text(company)
    expect(row.locator("code.code")).to_have_text("UNKNOWN_COMPANY")

    open_wallet(ledger, company, [sender])  # the cause, fixed
    row.get_by_role("button", name=re.compile("Replay")).click()
    expect(operator.get_by_role("status")).to_contain_text("Replayed")
    for _ in range(50):
        operator.goto(f"{ledger.url}/console/companies/{company}")
        if operator.get_by_test_id("balance").inner_text() == "-1.5 USD":
            break
        operator.wait_for_timeout(200)
    expect(operator.get_by_test_id("balance")).to_have_text("-1.5 USD")

    code = "UNKNOWN_COMPANY"
    operator.goto(f"{ledger.url}/console/ops/dead-letters?code={code}")
    operator.get_by_role("button", name=f"Replay every {code} letter").click()
    expect(operator.get_by_role("status")).to_contain_text("Replayed")
    operator.wait_for_timeout(1500)  # time for the consumer to see the replay again
    operator.goto(f"{ledger.url}/console/companies/{company}")
    expect(operator.get_by_test_id("balance")).to_have_text("-1.5 USD")  # applied once only
