"""Edges of the HTTP contract that the schemathesis run found (tests/e2e/test_api_contract.py),
pinned here so that each has a fast, named test: text PostgreSQL cannot store is a 422 (it
was a 500), times are RFC 3339 (a bare number was read as seconds since 1970), a 405 names
every method of its path, an unknown company's hold is 404."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Tokens
from tests.integration.test_api import assert_error, key

pytestmark = pytest.mark.integration


async def test_text_with_a_nul_character_is_refused_not_a_server_error(
    api: httpx.AsyncClient, tokens: Tokens
) -> None:
    body = {"usage": {"source": "svc", "id": "a\u0000b"}, "reason": "refund"}
    response = await api.post(
        "/v1/wallets/acme/refunds", json=body, headers=tokens.operator() | key()
    )
    assert_error(response, 422, "VALIDATION_ERROR")
    assert "NUL" in response.json()["error"]["message"]


@pytest.mark.parametrize("value", ["0.5", "1700000000", "2026-11-01", "2026-11-01T00:00:00"])
async def test_times_are_rfc3339_with_an_offset(
    api: httpx.AsyncClient, tokens: Tokens, value: str
) -> None:
    response = await api.get(
        "/v1/admin/transactions", params={"to": value}, headers=tokens.operator()
    )
    assert_error(response, 422, "VALIDATION_ERROR")
    fine = await api.get(
        "/v1/admin/transactions", params={"to": "2026-11-01T00:00:00+05:30"},
        headers=tokens.operator(),
    )  # fmt: skip
    assert fine.status_code == 200, fine.text


async def test_a_405_names_every_method_of_the_path(api: httpx.AsyncClient, tokens: Tokens) -> None:
    response = await api.request("OPTIONS", "/v1/packs", headers=tokens.operator())
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "GET, POST"


async def test_a_hold_for_an_unknown_company_is_404(api: httpx.AsyncClient, tokens: Tokens) -> None:
    body = {"waba_id": "w", "category": "marketing", "units": 1, "reference": "m1"}
    response = await api.post("/v1/wallets/nobody-here/holds", json=body,
                              headers=tokens.sender() | key())  # fmt: skip
    assert_error(response, 404, "UNKNOWN_COMPANY")
