"""Security basics over HTTP: request bodies are bounded (413 by Content-Length or as a
chunked body grows), and neither tokens nor secrets reach the logs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import structlog.testing

from ledger_service.config import Settings
from tests.conftest import Tokens
from tests.integration.test_api import assert_error, key

pytestmark = pytest.mark.integration
BIG = b'{"company_id": "acme", "note": "' + b"x" * 1_100_000 + b'"}'


async def chunks(body: bytes, size: int = 65_536) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("path", ["/v1/topup-requests", "/v1/wallets/acme/holds"])
async def test_bodies_over_the_bound_are_413_however_they_are_sent(
    api: httpx.AsyncClient, tokens: Tokens, path: str
) -> None:
    headers = tokens.operator() | key() | {"Content-Type": "application/json"}
    assert_error(await api.post(path, content=BIG, headers=headers), 413, "PAYLOAD_TOO_LARGE")
    chunked = await api.post(path, content=chunks(BIG), headers=headers)
    assert_error(chunked, 413, "PAYLOAD_TOO_LARGE")
    assert "content-length" not in {k.lower() for k in chunked.request.headers}


async def test_tokens_and_secrets_never_reach_the_logs(
    api: httpx.AsyncClient, tokens: Tokens, api_settings: Settings, company_id: str
) -> None:
    good = tokens.tenant(company_id)["Authorization"].split()[1]
    forged = good[:-6] + "AAAAAA"
    with structlog.testing.capture_logs() as logs:
        await api.get(f"/v1/wallets/{company_id}", headers={"Authorization": f"Bearer {good}"})
        await api.get(f"/v1/wallets/{company_id}", headers={"Authorization": f"Bearer {forged}"})
        await api.get("/v1/wallets/x", headers={"Authorization": f"Basic {good}"})
        await api.post("/v1/payments/webhooks/mock", content=b"{}",
                       headers={"Stripe-Signature": f"t=1,v1={good}"})  # fmt: skip
    text = repr(logs)
    assert logs, "the requests were logged"
    for secret in (
        good,
        forged,
        api_settings.jwt_secret,
        api_settings.payments_mock_webhook_secret,
    ):
        assert secret not in text
