"""The fast path of POST /v1/wallets/{id}/holds answers exactly what the FastAPI route answers
(the schema's description of the operation), for successes, replays and every kind of error."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ledger_service.api.app import create_app
from ledger_service.api.fast_holds import FastHoldRoute
from ledger_service.bootstrap import Container, read_models_opener
from ledger_service.service.ledger import LedgerApplication
from projections.projector import Projector
from tests.conftest import Tokens
from tests.integration.test_api import open_company

pytestmark = pytest.mark.integration


def app_of(container: Container, *, fast: bool) -> FastAPI:
    settings = container.settings
    return create_app(
        container.ledger, jwt_secret=settings.jwt_secret, hold_group_window_s=0.002,
        open_reads=read_models_opener(settings, container.database_url), fast_holds=fast,
    )  # fmt: skip


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ledger")


@pytest.fixture
async def both(
    api_container: Container, live_projection: Projector
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, FastAPI]]:
    fast, slow = app_of(api_container, fast=True), app_of(api_container, fast=False)
    async with (
        fast.router.lifespan_context(fast), slow.router.lifespan_context(slow),
        client(fast) as fast_client, client(slow) as slow_client,
    ):  # fmt: skip
        yield fast_client, slow_client, fast


def normalized(response: httpx.Response, company: str) -> tuple[int, Any]:
    body = response.json()
    text = json.dumps(body, sort_keys=True).replace(company, "<company>")
    text = re.sub(r'"(hold_id|expires_at|request_id)": "[^"]*"', r'"\1": "*"', text)
    text = re.sub(r'"position": \d+', '"position": 0', text)
    return response.status_code, json.loads(text)


async def test_the_fast_path_answers_as_the_schema_route_does(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient, FastAPI],
    pg_ledger: LedgerApplication,
    tokens: Tokens,
    company_id: str,
) -> None:
    fast, slow, fast_app = both
    companies = {"fast": f"{company_id}-f", "slow": f"{company_id}-s"}
    for company in companies.values():
        open_company(pg_ledger, company, included_quota="0", postpaid_limit="3")  # 0.5 each

    def hold(**extra: Any) -> Callable[[str], dict[str, Any]]:
        def body(company: str) -> dict[str, Any]:
            return {"waba_id": f"{company}-w1", "category": "marketing", "units": 2,
                    "reference": "m1"} | extra  # fmt: skip

        return body

    sender = tokens.sender()
    cases: list[tuple[str, Callable[[str], Any], dict[str, str], str]] = [
        ("placed", hold(), sender, ""),
        ("replayed", hold(), sender, ""),
        ("another body, active reference", hold(units=1), sender, ""),
        ("over available", hold(reference="m2", units=4), sender, ""),
        ("unknown category", hold(reference="m3", category="nope"), sender, ""),
        ("unlinked sender", lambda c: hold(reference="m4")(c) | {"waba_id": "nobody"}, sender, ""),
        ("missing field", lambda c: {"waba_id": f"{c}-w1", "units": 1}, sender, ""),
        ("units 0", hold(reference="m5", units=0), sender, ""),
        ("extra field", hold(reference="m6", surprise=True), sender, ""),
        ("not a mapping", lambda c: [1, 2], sender, ""),
        ("a tenant", hold(reference="m7"), tokens.tenant(company_id), ""),
        ("no token", hold(reference="m8"), {}, ""),
        ("another company's sender", hold(reference="m9"), tokens.sender("other"), ""),
        (
            "long idempotency key",
            hold(reference="m10"),
            sender | {"Idempotency-Key": "k" * 201},
            "",
        ),
        ("bad company id", hold(reference="m11"), sender, "bad company!"),
    ]
    for name, body, headers, company_override in cases:
        answers = []
        for client, company in ((fast, companies["fast"]), (slow, companies["slow"])):
            path_company = company_override or company
            response = await client.post(
                f"/v1/wallets/{path_company}/holds", json=body(company), headers=headers
            )
            answers.append(normalized(response, company))
        assert answers[0] == answers[1], name
        assert answers[0][0] in (201, 401, 403, 404, 409, 422), (name, answers[0])
    broken = [
        await client.post(f"/v1/wallets/{companies[k]}/holds", content=b"{not json",
                          headers=sender | {"Content-Type": "application/json"})
        for k, client in (("fast", fast), ("slow", slow))
    ]  # fmt: skip
    assert normalized(broken[0], companies["fast"]) == normalized(broken[1], companies["slow"])
    (route,) = [r for r in fast_app.router.routes if isinstance(r, FastHoldRoute)]
    # Only what does not validate went the slow way: 4 bodies, a key, a company, broken JSON.
    assert route.declined == 7
