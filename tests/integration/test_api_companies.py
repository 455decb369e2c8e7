"""A company's balance across its pools, on a real PostgreSQL: a shared pool, legacy
per-sender pools summed bucket by bucket, and the stale answer when the read is blocked."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from ledger_service.domain.ids import wallet_id
from ledger_service.service.ledger import LedgerApplication
from tests.conftest import Tokens
from tests.integration.test_api import assert_error, open_company

pytestmark = pytest.mark.integration


def open_legacy_pools(ledger: LedgerApplication, company: str, senders: list[str]) -> None:
    for sender in senders:
        ledger.open_wallet(
            company_id=company, currency="USD", mode="per_sender", pool_sender_id=sender,
            postpaid_limit="10", included_quota="0", rate_card={"marketing": "0.5"},
            actor="op", idempotency_key=f"open-{sender}",
        )  # fmt: skip
        ledger.credit_wallet(
            company_id=company, pool_sender_id=sender, amount="7", kind="adjustment",
            reference=f"funds-{sender}", actor="op", idempotency_key=f"funds-{sender}",
        )  # fmt: skip


async def balance(api: httpx.AsyncClient, tokens: Tokens, company: str) -> httpx.Response:
    return await api.get(f"/v1/companies/{company}/balance", headers=tokens.tenant(company))


async def test_a_company_balance_sums_its_pools_and_names_its_billing_model(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    shared, legacy = f"{company_id}-s", f"{company_id}-l"
    open_company(pg_ledger, shared)  # included 5, limit 100
    open_legacy_pools(pg_ledger, legacy, ["w1", "w2"])
    await api.get(f"/v1/wallets/{shared}?min_position={pg_ledger.recorder.max_notification_id()}",
                  headers=tokens.tenant(shared))  # fmt: skip
    one = (await balance(api, tokens, shared)).json()
    assert (one["billing_model"], one["pools"], one["balance"], one["available"]) == (
        "shared", 1, "5", "105"
    )  # fmt: skip
    two = (await balance(api, tokens, legacy)).json()
    assert (two["billing_model"], two["pools"], two["buckets"]["prepaid"]) == (
        "per_sender", 2, "14"
    )  # fmt: skip
    assert (two["balance"], two["available"], two["stale"]) == ("14", "34", False)
    other = tokens.tenant(f"{company_id}-x")
    assert_error(await api.get(f"/v1/companies/{legacy}/balance", headers=other), 404,
                 "WALLET_NOT_FOUND")  # fmt: skip


async def test_a_blocked_read_answers_the_last_figures_marked_stale(
    api: httpx.AsyncClient,
    pg_ledger: LedgerApplication,
    tokens: Tokens,
    company_id: str,
    database_url: str,
) -> None:
    open_company(pg_ledger, company_id)
    head = pg_ledger.recorder.max_notification_id()
    await api.get(f"/v1/wallets/{company_id}?min_position={head}",
                  headers=tokens.tenant(company_id))  # fmt: skip
    fresh = (await balance(api, tokens, company_id)).json()
    with psycopg.connect(database_url) as blocker:  # holds the table until the block ends
        blocker.execute("LOCK TABLE rm_wallet_balances IN ACCESS EXCLUSIVE MODE")
        stale = await balance(api, tokens, company_id)
        never_read = await balance(api, tokens, f"{company_id}-new")
        blocker.rollback()
    assert stale.status_code == 200
    assert stale.json() == fresh | {"stale": True}
    assert_error(never_read, 503, "UNAVAILABLE")


async def test_without_auto_open_a_tenants_unknown_company_stays_404(
    api: httpx.AsyncClient, pg_ledger: LedgerApplication, tokens: Tokens, company_id: str
) -> None:
    tenant = tokens.tenant(company_id)
    assert_error(await api.get(f"/v1/wallets/{company_id}", headers=tenant), 404,
                 "WALLET_NOT_FOUND")  # fmt: skip
    assert list(pg_ledger.events.get(wallet_id(company_id))) == []
