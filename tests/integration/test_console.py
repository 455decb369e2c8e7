"""The console over HTTP, in process (real PostgreSQL, the live projection): sign-in with
one-time links, CSRF, tenant isolation, and the top-up lifecycle through forms. The same flows in
a real browser are in tests/browser/."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from ledger_service.bootstrap import Container, build_api
from ledger_service.console.sign_in import ConsoleSigner
from ledger_service.domain.risk import RiskRules
from ledger_service.service.ledger import LedgerApplication
from projections.projector import Projector
from tests.integration.test_api import open_company

pytestmark = pytest.mark.integration
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')
KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


@pytest.fixture
async def browser_like(
    api_container: Container, live_projection: Projector
) -> AsyncIterator[httpx.AsyncClient]:
    """A client that keeps cookies; https, since outside development the cookie is Secure."""
    app = build_api(api_container)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://ledger") as c,
    ):
        yield c


@pytest.fixture
def signer(api_container: Container) -> ConsoleSigner:
    settings = api_container.settings
    return ConsoleSigner(
        settings.console_signing_secret, session_ttl_s=settings.console_session_ttl_s
    )


def link(signer: ConsoleSigner, company: str | None, scope: str, ttl_s: int = 60) -> str:
    subject = f"user@{company}" if company else "ops@platform"
    return signer.mint_link(subject=subject, company_id=company, scopes=(scope,), ttl_s=ttl_s)


def another_browser(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A second person on the same app: the same transport, a cookie jar of its own."""
    return httpx.AsyncClient(transport=client._transport, base_url="https://ledger")


async def sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    page = await client.get("/console/sign-in", params={"token": token})
    assert page.status_code == 200, page.text
    return await client.post("/console/sign-in", data={"token": token})


def form_fields(html: str) -> dict[str, str]:
    """The CSRF token (the same, and present, in every form of the page) and a form's key."""
    tokens, key = set(CSRF.findall(html)), KEY.search(html)
    assert len(tokens) == 1, tokens
    assert "" not in tokens
    assert key is not None
    return {"csrf_token": tokens.pop(), "idempotency_key": key.group(1)}


async def test_a_login_link_signs_in_once_with_a_strict_httponly_cookie(
    browser_like: httpx.AsyncClient, pg_ledger: LedgerApplication, signer: ConsoleSigner,
    company_id: str,
) -> None:  # fmt: skip
    open_company(pg_ledger, company_id)
    token = link(signer, company_id, "billing.view")
    signed = await sign_in(browser_like, token)
    assert signed.status_code == 303
    assert signed.headers["location"] == f"/console/companies/{company_id}"
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "secure" in cookie
    wallet = await browser_like.get(signed.headers["location"])
    assert wallet.status_code == 200
    assert f"Wallet of {company_id}" in wallet.text
    assert f"{company_id}-w1" in wallet.text  # the senders sharing the pool

    again = await another_browser(browser_like).post("/console/sign-in", data={"token": token})
    assert again.status_code == 409
    assert "LOGIN_LINK_USED" in again.text


async def test_expired_and_forged_links_are_refused(
    browser_like: httpx.AsyncClient, signer: ConsoleSigner, company_id: str
) -> None:
    expired = signer.mint_link(
        subject="u", company_id=company_id, scopes=("billing.view",), ttl_s=-1
    )
    response = await browser_like.get("/console/sign-in", params={"token": expired})
    assert response.status_code == 401
    assert "LOGIN_LINK_INVALID" in response.text
    assert "expired" in response.text
    forged = link(signer, company_id, "billing.view")[:-3] + "AAA"
    response = await browser_like.post("/console/sign-in", data={"token": forged})
    assert response.status_code == 401
    assert "Request id" in response.text


async def test_a_tenant_sees_only_its_own_company_and_no_operator_page(
    browser_like: httpx.AsyncClient, pg_ledger: LedgerApplication, signer: ConsoleSigner,
    company_id: str,
) -> None:  # fmt: skip
    other = f"{company_id}-other"
    open_company(pg_ledger, company_id)
    open_company(pg_ledger, other)
    await sign_in(browser_like, link(signer, company_id, "billing.view"))
    for path in (f"/console/companies/{other}", f"/console/companies/{other}/topups",
                 "/console/ops/topups"):  # fmt: skip
        response = await browser_like.get(path)
        assert response.status_code == 404, path
        assert "NOT_FOUND" in response.text


async def test_pages_need_a_session_and_forms_need_the_csrf_token(
    browser_like: httpx.AsyncClient, pg_ledger: LedgerApplication, signer: ConsoleSigner,
    company_id: str,
) -> None:  # fmt: skip
    open_company(pg_ledger, company_id)
    anonymous = await browser_like.get(f"/console/companies/{company_id}")
    assert anonymous.status_code == 401
    assert "ledger login-link" in anonymous.text
    await sign_in(browser_like, link(signer, company_id, "billing.view"))
    path = f"/console/companies/{company_id}/topups"
    fields = form_fields((await browser_like.get(path)).text)
    data = {"amount": "25", "currency": "USD", "idempotency_key": fields["idempotency_key"]}
    refused = await browser_like.post(path, data=data)
    assert refused.status_code == 403
    assert "CSRF_TOKEN_INVALID" in refused.text
    refused = await browser_like.post(path, data=data | {"csrf_token": "forged"})
    assert refused.status_code == 403
    listed = await browser_like.get(f"/v1/topup-requests?company={company_id}")
    assert listed.status_code == 401  # the session cookie is not an API credential
    page = await browser_like.get(path)
    assert "No top-up requests yet" in page.text


async def test_the_top_up_lifecycle_through_the_console(
    browser_like: httpx.AsyncClient, pg_ledger: LedgerApplication, signer: ConsoleSigner,
    company_id: str,
) -> None:  # fmt: skip
    open_company(pg_ledger, company_id)
    tenant = browser_like
    await sign_in(tenant, link(signer, company_id, "billing.view"))
    path = f"/console/companies/{company_id}/topups"
    fields = form_fields((await tenant.get(path)).text)
    form = fields | {"amount": "25.50", "currency": "USD", "note": "for March"}
    requested = await tenant.post(path, data=form, follow_redirects=True)
    assert requested.status_code == 200
    assert "Top-up requested" in requested.text
    assert "25.5 USD" in requested.text
    assert (await tenant.post(path, data=form)).status_code == 303  # a double submit
    bad = await tenant.post(path, data=fields | {"amount": "-3", "currency": "USD"})
    assert bad.status_code == 422
    assert "Request id" in bad.text

    operator = another_browser(tenant)
    await sign_in(operator, link(signer, None, "billing.manage"))
    queue = await operator.get(f"/console/ops/topups?company={company_id}")
    assert queue.text.count("data-topup=") == 1  # the double submit made one request
    topup_id = re.search(r'data-topup="([^"]+)"', queue.text).group(1)  # type: ignore[union-attr]
    approve = f"/console/ops/topups/{topup_id}/approve"
    approved = await operator.post(approve, data=form_fields(queue.text), follow_redirects=True)
    assert approved.status_code == 200, approved.text
    invoice = re.search(r"TOP-\d{6}-[^<\s]+", approved.text)
    assert invoice is not None

    pay_path = f"/console/ops/topups/{topup_id}/mark-paid"
    paid = await operator.post(
        pay_path, data=form_fields(approved.text) | {"payment_reference": "bank-77"},
        follow_redirects=True,
    )  # fmt: skip
    assert paid.status_code == 200, paid.text
    assert "bank-77" in paid.text
    wallet = await tenant.get(f"/console/companies/{company_id}")
    assert "30.5 USD" in wallet.text  # 5 included + 25.5 prepaid
    mine = await tenant.get(path)
    assert invoice.group(0) in mine.text
    assert "completed" in mine.text


async def test_operators_release_what_the_risk_review_held(
    browser_like: httpx.AsyncClient, pg_ledger: LedgerApplication, signer: ConsoleSigner,
    company_id: str,
) -> None:  # fmt: skip
    open_company(pg_ledger, company_id)
    pg_ledger.risk_rules = RiskRules(amount_max={"USD": Decimal(10)})
    try:
        pg_ledger.request_topup(
            company_id=company_id, amount="50", currency="USD", actor="t", idempotency_key="r"
        )
    finally:
        pg_ledger.risk_rules = RiskRules()
    await sign_in(browser_like, link(signer, None, "billing.manage"))
    queue = await browser_like.get(
        "/console/ops/topups", params={"status": "needs_review", "company": company_id}
    )
    assert "amount_above_threshold" in queue.text
    topup_id = re.search(r'data-topup="([^"]+)"', queue.text).group(1)  # type: ignore[union-attr]
    released = await browser_like.post(
        f"/console/ops/topups/{topup_id}/release", data=form_fields(queue.text) | {"company": ""},
        follow_redirects=True,
    )  # fmt: skip
    assert released.status_code == 200, released.text
    assert "Released" in released.text
    assert f'data-topup="{topup_id}"' in released.text, "shown under pending, ready to approve"


async def test_transactions_filter_page_and_download_as_csv(
    browser_like: httpx.AsyncClient, pg_ledger: LedgerApplication, signer: ConsoleSigner,
    company_id: str,
) -> None:  # fmt: skip
    open_company(pg_ledger, company_id)
    for number in range(3):
        pg_ledger.credit_wallet(
            company_id=company_id, amount=f"1.{number}5", kind="grant", reference=f"g{number}",
            actor="op", idempotency_key=f"grant-{number}",
        )  # fmt: skip
    position = pg_ledger.recorder.max_notification_id()
    await sign_in(browser_like, link(signer, company_id, "billing.view"))
    path = f"/console/companies/{company_id}/transactions"
    await browser_like.get(f"/console/companies/{company_id}?min_position={position}")
    page = await browser_like.get(path)
    assert page.text.count("data-entry=") == 4  # with the included quota's opening grant
    assert page.text.index(">1.25<") < page.text.index(">1.15<")  # newest first, as stored
    assert "No transactions match" in (await browser_like.get(f"{path}?kind=usage")).text
    future = await browser_like.get(f"{path}?from=2099-01-01")
    assert "No transactions match" in future.text

    download = await browser_like.get(f"{path}.csv?kind=grant&from=2000-01-01")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    lines = download.text.strip().splitlines()
    assert lines[0].startswith("position,occurred_at,direction,kind,amount,currency")
    assert [line.split(",")[4] for line in lines[1:]] == ["1.25", "1.15", "1.05", "5"]
    assert {line.split(",")[5] for line in lines[1:]} == {"USD"}
    other = await browser_like.get(f"/console/companies/{company_id}-x/transactions.csv")
    assert other.status_code == 404

    alerts = await browser_like.get(f"/console/companies/{company_id}/alerts")
    assert alerts.status_code == 200
    assert "No alerts yet" in alerts.text


async def test_operators_search_wallets_page_through_them_and_read_the_stats(
    browser_like: httpx.AsyncClient, pg_ledger: LedgerApplication, signer: ConsoleSigner,
    company_id: str,
) -> None:  # fmt: skip
    companies = [f"{company_id}-{n:02d}" for n in range(27)]  # more than a page of 25
    for company in companies:
        open_company(pg_ledger, company)
    position = pg_ledger.recorder.max_notification_id()
    await sign_in(browser_like, link(signer, None, "billing.manage"))
    first = await browser_like.get(f"/console/ops/wallets?q={company_id}&min_position={position}")
    assert first.status_code == 200
    assert first.text.count("data-wallet=") == 25
    more = re.search(r'href="\?q=[^&]+&(?:amp;)?after=([^"]+)"', first.text)
    assert more is not None
    second = await browser_like.get(f"/console/ops/wallets?q={company_id}&after={more.group(1)}")
    listed = re.findall(r'data-wallet="([^"]+)"', first.text + second.text)
    assert listed == companies
    nothing = await browser_like.get("/console/ops/wallets?q=no-such-company-at-all")
    assert "No company id contains" in nothing.text

    stats = await browser_like.get(f"/console/ops/stats?min_position={position}")
    assert stats.status_code == 200
    assert "Money in wallets, by bucket" in stats.text
    tenant = another_browser(browser_like)
    await sign_in(tenant, link(signer, companies[0], "billing.view"))
    for path in ("/console/ops/wallets", "/console/ops/stats"):
        assert (await tenant.get(path)).status_code == 404


async def test_empty_date_fields_mean_no_bound_and_bad_dates_are_refused(
    browser_like: httpx.AsyncClient, pg_ledger: LedgerApplication, signer: ConsoleSigner,
    company_id: str,
) -> None:  # fmt: skip
    open_company(pg_ledger, company_id)
    await sign_in(browser_like, link(signer, company_id, "billing.view"))
    path = f"/console/companies/{company_id}/transactions"
    assert (await browser_like.get(f"{path}?kind=&sender=&from=&to=")).status_code == 200
    for bad in ("from=2026-13-01", "to=yesterday"):
        response = await browser_like.get(f"{path}?{bad}")
        assert response.status_code == 422, bad
        assert "VALIDATION_ERROR" in response.text


async def test_operators_change_senders_limits_prices_and_policies_from_the_wallet_page(
    browser_like: httpx.AsyncClient, pg_ledger: LedgerApplication, signer: ConsoleSigner,
    company_id: str,
) -> None:  # fmt: skip
    open_company(pg_ledger, company_id)
    await sign_in(browser_like, link(signer, None, "billing.manage"))
    page_path = f"/console/companies/{company_id}"
    page = html.unescape((await browser_like.get(page_path)).text)
    assert "marketing = 0.5" in page
    assert f'href="/console/companies/{company_id}/transactions"' in page  # the company's pages
    assert '"low_balance_percent"' in page

    async def post(path: str, **data: str) -> httpx.Response:
        fields = form_fields((await browser_like.get(page_path)).text)
        return await browser_like.post(
            f"{page_path}/{path}", data=fields | data, follow_redirects=True
        )

    linked = await post("senders", waba_id=f"{company_id}-w2")
    assert linked.status_code == 200, linked.text
    assert f"{company_id}-w2</code>" in linked.text
    unlinked = await post(f"senders/{company_id}-w1/unlink")
    assert f"{company_id}-w1</code>" not in unlinked.text
    saved = await post(
        "settings",
        postpaid_limit="75.5",
        included_quota="",
        rate_card="marketing = 0.07\nutility=0.02",
    )
    assert "Saved" in saved.text
    wallet = pg_ledger.get_wallet(company_id)
    assert wallet.postpaid_limit == Decimal("75.5")
    assert wallet.rate_card == {"marketing": Decimal("0.07"), "utility": Decimal("0.02")}
    assert wallet.included_quota == Decimal(5)  # left empty: kept

    bad = await post("settings", rate_card="marketing 0.07")
    assert bad.status_code == 422
    assert "rate card line 1" in bad.text
    refused = await post("policies", policies='{"alerts": {"low_balance_percent": "-1"}}')
    assert refused.status_code == 422
    not_policy = await post("policies", policies='{"postpaid_limit": "1"}')
    assert not_policy.status_code == 422
    policies = await post("policies", policies='{"alerts": {"low_balance_threshold": "20"}}')
    assert policies.status_code == 200, policies.text
    assert '"low_balance_threshold": "20"' in html.unescape(policies.text)

    tenant = another_browser(browser_like)
    await sign_in(tenant, link(signer, company_id, "billing.view"))
    tenant_page = (await tenant.get(page_path)).text
    assert "wallet settings" not in tenant_page
    csrf = CSRF.search(tenant_page)
    assert csrf is not None
    form = {"csrf_token": csrf.group(1), "idempotency_key": "k1", "waba_id": "x"}
    response = await tenant.post(f"{page_path}/senders", data=form)
    assert response.status_code == 404


async def test_the_dead_letter_page_says_when_the_process_has_no_broker(
    browser_like: httpx.AsyncClient, signer: ConsoleSigner
) -> None:
    await sign_in(browser_like, link(signer, None, "billing.manage"))
    response = await browser_like.get("/console/ops/dead-letters")
    assert response.status_code == 503
    assert "BROKER_NOT_CONFIGURED" in response.text


async def test_signing_out_ends_the_session(
    browser_like: httpx.AsyncClient, pg_ledger: LedgerApplication, signer: ConsoleSigner,
    company_id: str,
) -> None:  # fmt: skip
    open_company(pg_ledger, company_id)
    await sign_in(browser_like, link(signer, company_id, "billing.view"))
    page = await browser_like.get(f"/console/companies/{company_id}")
    csrf = CSRF.search(page.text)
    assert csrf is not None
    assert (await browser_like.post("/console/sign-out", data={})).status_code == 403
    signed_out = await browser_like.post("/console/sign-out", data={"csrf_token": csrf.group(1)})
    assert signed_out.status_code == 303
    assert 'ledger_console_session=""' in signed_out.headers["set-cookie"]
    assert (await browser_like.get(f"/console/companies/{company_id}")).status_code == 401
    metrics = (await browser_like.get("/metrics")).text  # console routes named in full
    assert 'route="/console/sign-out"' in metrics
    assert 'route="/console/companies/{company_id}"' in metrics


async def test_bad_form_values_are_error_pages_and_pages_are_not_cached(
    browser_like: httpx.AsyncClient, pg_ledger: LedgerApplication, signer: ConsoleSigner,
    company_id: str,
) -> None:  # fmt: skip
    open_company(pg_ledger, company_id)
    await sign_in(browser_like, link(signer, company_id, "billing.view"))
    path = f"/console/companies/{company_id}/topups"
    page = await browser_like.get(path)
    assert page.headers["cache-control"] == "no-store"
    zero = await browser_like.post(
        path, data=form_fields(page.text) | {"amount": "0", "currency": "USD"}
    )
    assert zero.status_code == 422, zero.text
    assert "INVALID_AMOUNT" in zero.text
    assert "Request id" in zero.text

    operator = another_browser(browser_like)
    await sign_in(operator, link(signer, None, "billing.manage"))
    wallet_path = f"/console/companies/{company_id}"
    bad_forms: list[tuple[str, dict[str, str]]] = [
        ("settings", {}),
        ("policies", {"policies": "{}"}),
        ("policies", {"policies": '{"cycle": {"time_zone": "Mars/Base"}}'}),
    ]
    for form, data in bad_forms:
        fields = form_fields((await operator.get(wallet_path)).text)
        response = await operator.post(f"{wallet_path}/{form}", data=fields | data)
        assert response.status_code in (400, 422), (form, data, response.text)
        assert "Request id" in response.text


async def test_a_sign_in_posted_from_another_site_is_refused(
    browser_like: httpx.AsyncClient, signer: ConsoleSigner, company_id: str
) -> None:
    token = link(signer, company_id, "billing.view")
    refused = await browser_like.post(
        "/console/sign-in", data={"token": token}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert refused.status_code == 403
    assert "CROSS_SITE_SIGN_IN" in refused.text
    same = await browser_like.post(
        "/console/sign-in", data={"token": token}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert same.status_code == 303  # the link was not spent by the refused post


async def test_csv_cells_that_a_spreadsheet_would_run_are_made_inert(
    browser_like: httpx.AsyncClient, pg_ledger: LedgerApplication, signer: ConsoleSigner,
    company_id: str,
) -> None:  # fmt: skip
    open_company(pg_ledger, company_id)
    pg_ledger.credit_wallet(
        company_id=company_id, amount="2", kind="grant", reference='=HYPERLINK("http://x")',
        actor="@op", idempotency_key="formula",
    )  # fmt: skip
    position = pg_ledger.recorder.max_notification_id()
    await sign_in(browser_like, link(signer, company_id, "billing.view"))
    await browser_like.get(f"/console/companies/{company_id}?min_position={position}")
    download = await browser_like.get(f"/console/companies/{company_id}/transactions.csv")
    assert download.headers["cache-control"] == "no-store"
    rows = list(csv.reader(io.StringIO(download.text)))
    grant = next(r for r in rows[1:] if "HYPERLINK" in r[11])
    assert grant[11] == '\'=HYPERLINK("http://x")'
    assert grant[13] == "'@op"
    assert grant[4] == "2"
