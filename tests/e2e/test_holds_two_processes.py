"""Holds through two real API processes (two `ledger serve` on one database, each with its own
hold batcher and wallet cache): 50 concurrent requests against a pool with room for exactly ten
grant exactly ten, whichever process each lands on."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from ledger_service.api.auth import mint_token
from ledger_service.bootstrap import build_ledger
from ledger_service.config import DEVELOPMENT_JWT_SECRET, Settings
from tests.conftest import temporary_database
from tests.e2e.test_run_command import LEDGER, free_port, wait_ready

pytestmark = pytest.mark.integration
COMPANY = "two-procs"


def _token(scopes: list[str]) -> dict[str, str]:
    token = mint_token(DEVELOPMENT_JWT_SECRET, subject="e2e", company_id=None, scopes=scopes,
                       ttl_s=600)  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def two_servers(admin_database_url: str, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """The database URL and the base URLs of two `ledger serve` processes on it."""
    with temporary_database(admin_database_url) as database_url:
        processes, urls, logs = [], [], []
        try:
            for number in range(2):  # one after the other: the first migrates
                port = free_port()
                env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")} | {
                    "LEDGER_DATABASE_URL": database_url,
                    "LEDGER_HTTP_PORT": str(port),
                    "LEDGER_HTTP_HOST": "127.0.0.1",
                }
                logs.append((tmp_path / f"serve-{number}.log").open("w"))
                process = subprocess.Popen([LEDGER, "serve"], env=env, stdout=logs[-1],
                                           stderr=logs[-1], text=True)  # fmt: skip
                processes.append(process)
                wait_ready(process, port)
                urls.append(f"http://127.0.0.1:{port}")
            yield database_url, urls
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)
            for log in logs:
                log.close()


async def test_fifty_holds_through_two_processes_grant_exactly_the_room_of_the_pool(
    two_servers: tuple[str, list[str]],
) -> None:
    database_url, urls = two_servers
    operator = _token(["billing.manage"])
    async with httpx.AsyncClient(base_url=urls[0], headers=operator, timeout=30) as setup:
        for number, (path, body) in enumerate([
            ("/v1/wallets", {"company_id": COMPANY, "currency": "USD", "postpaid_limit": "5",
                             "rate_card": {"marketing": "0.5"}}),  # room for 10 x 0.5
            (f"/v1/wallets/{COMPANY}/senders", {"waba_id": f"{COMPANY}-w"}),
        ]):  # fmt: skip
            answer = await setup.post(path, json=body, headers={"Idempotency-Key": f"s{number}"})
            assert answer.status_code == 201, answer.text
    sender = _token(["billing.usage"])
    clients = [httpx.AsyncClient(base_url=url, headers=sender, timeout=30) for url in urls]
    try:
        answers = await asyncio.gather(*(
            clients[i % 2].post(f"/v1/wallets/{COMPANY}/holds", json={
                "waba_id": f"{COMPANY}-w", "category": "marketing", "units": 1,
                "reference": f"msg-{i}"})
            for i in range(50)
        ))  # fmt: skip
    finally:
        for client in clients:
            await client.aclose()
    granted = [a for a in answers if a.status_code == 201]
    refused = [a for a in answers if a.status_code == 409]
    assert (len(granted), len(refused)) == (10, 40), [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in refused} == {"INSUFFICIENT_AVAILABLE_BALANCE"}
    # Each process answered its half: the other's grants were seen, not over-reserved.
    answered = [str(a.url).rsplit("/v1", 1)[0] for a in answers]
    assert sorted(answered.count(url) for url in urls) == [25, 25]
    ledger = build_ledger(Settings(environment="test", db_pool_size=2), database_url)
    try:
        wallet = ledger.get_wallet(COMPANY)
    finally:
        ledger.close()
    assert (wallet.held, wallet.available) == (Decimal(5), Decimal(0))
