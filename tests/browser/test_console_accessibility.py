"""Every console page passes axe-core's WCAG 2 A and AA rules (contrast, labels, names,
landmarks), in Chromium, filled with real data; and the main path works from the keyboard."""

from __future__ import annotations

import uuid

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.browser.conftest import Ledger, PageFactory
from tests.browser.test_console_browser import open_wallet, publish_usage, sign_in

pytestmark = pytest.mark.integration
WCAG_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


def check(page: Page, path: str, axe: Axe, ledger: Ledger) -> None:
    page.goto(f"{ledger.url}{path}")
    results = axe.run(page, options=WCAG_AA)
    assert results.violations_count == 0, f"{path}:\n{results.generate_snapshot()}"


def test_axe_finds_what_it_should(new_page: PageFactory) -> None:
    """The check below can fail: an unlabelled field in grey on grey is two violations."""
    page = new_page()
    page.set_content(
        '<html lang="en"><head><title>t</title></head><body><main>'
        '<p style="color:#aaa;background:#bbb">faint</p><input id="x"></main></body></html>'
    )
    found = Axe().run(page, options=WCAG_AA).generate_snapshot()
    assert "color-contrast" in found
    assert "label" in found


def test_every_page_passes_wcag_aa(ledger: Ledger, new_page: PageFactory) -> None:
    axe = Axe()
    company = f"a11y-{uuid.uuid4().hex[:8]}"
    open_wallet(ledger, company, [f"{company}-w1"])
    publish_usage(ledger, company, {f"{company}-w1": 2})
    publish_usage(ledger, f"{company}-nobody", {"nobody-w1": 1})  # a dead letter to list
    page = new_page()
    check(page, "/console/", axe, ledger)
    link = ledger.login_link("--company", company)
    page.goto(link)
    assert Axe().run(page, options=WCAG_AA).violations_count == 0
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{ledger.url}/console/companies/{company}/topups")
    page.get_by_label("Amount (USD)").fill("12")
    page.get_by_role("button", name="Request top-up").click()
    for path in ("", "/topups", "/transactions", "/usage", "/alerts", "/transactions?kind=usage"):
        check(page, f"/console/companies/{company}{path}", axe, ledger)
    check(page, "/console/ops/topups", axe, ledger)  # the 404 page

    operator = new_page()
    sign_in(operator, ledger.login_link("--sub", "ops", "--scopes", "billing.manage"))
    operator_pages = (
        "/console/ops/topups", f"/console/ops/topups?company={company}", "/console/ops/wallets",
        "/console/ops/stats", f"/console/companies/{company}", "/console/ops/dead-letters",
    )  # fmt: skip
    for path in operator_pages:
        check(operator, path, axe, ledger)


def test_a_tenant_requests_a_top_up_with_the_keyboard_alone(
    ledger: Ledger, new_page: PageFactory
) -> None:
    company = f"keys-{uuid.uuid4().hex[:8]}"
    open_wallet(ledger, company, [])
    page = new_page()
    sign_in(page, ledger.login_link("--company", company))
    page.goto(f"{ledger.url}/console/companies/{company}/topups")
    page.keyboard.press("Tab")  # the skip link comes first
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_label("Amount (USD)").focus()
    page.keyboard.type("15")
    page.keyboard.press("Tab")
    page.keyboard.type("by keyboard")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Request top-up")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Top-up requested")
