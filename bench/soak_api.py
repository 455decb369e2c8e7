"""Money through the HTTP API while the soak runs: wallets opened and funded, then top-ups
(request -> approve -> mark paid) and transfers between wallets, all the way through.

Every write carries an Idempotency-Key and a retry sends the SAME key: a request whose answer
was lost (the connection cut by a PostgreSQL restart, a 5xx) is asked again and answered with
its recorded result, never applied twice. Only what the API confirmed goes into the reference;
an operation still unanswered when the run's deadline comes is counted as uncertain.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from bench.soak_workload import CURRENCY, RATE_CARD, Company, Reference

REQUEST_TIMEOUT_S = 30.0
BACKOFF_MAX_S = 3.0
SETUP_CONCURRENCY = 16
INITIAL_FUNDING = Decimal("1000")
POSTPAID_LIMIT = "100"
TOPUP_SHARE = 0.4
"""Of the operations during the run: top-ups; the rest are transfers."""


class Refused(Exception):
    """A 4xx the API meant (not a conflict worth retrying)."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"{status} {code}")
        self.status, self.code = status, code


class Uncertain(Exception):
    """No answer before the run's deadline: whether it was applied is unknown."""


@dataclass
class ApiStats:
    calls: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    topups: int = 0
    transfers: int = 0
    uncertain: int = 0


class Api:
    def __init__(self, base_url: str, token: str, deadline: float, stats: ApiStats) -> None:
        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT_S,
        )
        self.deadline = deadline
        self.stats = stats

    async def close(self) -> None:
        await self.client.aclose()

    async def write(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST with one Idempotency-Key, retried with that same key until answered."""
        key = uuid.uuid4().hex
        attempt = 0
        while True:
            reason = await self._attempt(path, body, key)
            if isinstance(reason, dict):
                return reason
            self.stats.retries[reason] += 1
            if time.monotonic() > self.deadline:
                raise Uncertain(f"POST {path}: no answer before the deadline (last: {reason})")
            await asyncio.sleep(min(BACKOFF_MAX_S, 0.1 * 2**attempt))
            attempt += 1

    async def _attempt(
        self, path: str, body: dict[str, Any] | None, key: str
    ) -> dict[str, Any] | str:
        """The answer, or why to try again."""
        self.stats.calls += 1
        try:
            response = await self.client.post(path, json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError as exc:
            return f"connection: {type(exc).__name__}"
        if response.status_code < 300:
            return dict(response.json())
        code = _error_code(response)
        if response.status_code >= 500:
            return f"{response.status_code} {code}"
        if response.status_code == 409 and code == "CONCURRENCY_CONFLICT":
            return "409 CONCURRENCY_CONFLICT"
        raise Refused(response.status_code, code)

    async def healthy(self) -> bool:
        try:
            return (await self.client.get("/healthz")).status_code == 200
        except httpx.TransportError:
            return False


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "?"


async def topup(api: Api, company: str, amount: Decimal, reference: Reference) -> None:
    """Request, approve, mark paid: the wallet is credited when (and only when) the last step
    is confirmed."""
    body = {"company_id": company, "amount": str(amount), "currency": CURRENCY}
    requested = await api.write("/v1/topup-requests", body)
    topup_id = requested["id"]
    await api.write(f"/v1/topup-requests/{topup_id}/approve")
    await api.write(
        f"/v1/topup-requests/{topup_id}/mark-paid", {"payment_reference": f"soak-{topup_id}"}
    )
    reference.credit(company, amount)
    api.stats.topups += 1


async def transfer(api: Api, sender: str, receiver: str, amount: Decimal, ref: Reference) -> None:
    body = {
        "from_company_id": sender,
        "to_company_id": receiver,
        "amount": str(amount),
        "commission_rate": "0",
    }
    result = await api.write("/v1/transfers", body)
    ref.transfer(sender, receiver, Decimal(result["amount"]), Decimal(result["net_amount"]))
    api.stats.transfers += 1


async def open_and_fund(api: Api, companies: list[Company], reference: Reference) -> None:
    """Open every wallet (shared pool, the soak's rate card), link its senders and fund it
    with one top-up that covers all its usage and transfers: nothing drifts into postpaid
    credit or gets refused, so the reference stays plain arithmetic."""
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)
    rate_card = {category: str(price) for category, price in RATE_CARD.items()}

    async def one(company: Company) -> None:
        async with gate:
            await api.write("/v1/wallets", {
                "company_id": company.id, "currency": CURRENCY,
                "postpaid_limit": POSTPAID_LIMIT, "rate_card": rate_card,
            })  # fmt: skip
            for sender in company.senders:
                await api.write(f"/v1/wallets/{company.id}/senders", {"waba_id": sender})
            await topup(api, company.id, INITIAL_FUNDING, reference)

    await asyncio.gather(*(one(company) for company in companies))


async def money_movements(
    api: Api,
    companies: list[Company],
    reference: Reference,
    *,
    ops_per_s: float,
    workers: int,
    seed: int,
    stop: asyncio.Event,
) -> None:
    """Top-ups and transfers at ``ops_per_s`` (spread over ``workers``) until ``stop``; an
    operation in flight when ``stop`` is set is finished, so the reference stays whole."""
    rng = random.Random(seed)
    interval_s = workers / ops_per_s

    async def worker() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                await _one_movement(api, companies, reference, rng)
            except Refused as exc:
                api.stats.refused[exc.code] += 1
            except Uncertain:
                api.stats.uncertain += 1
                return
            pause = interval_s * rng.uniform(0.5, 1.5) - (time.monotonic() - started)
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)

    await asyncio.gather(*(worker() for _ in range(workers)))


async def _one_movement(
    api: Api, companies: list[Company], reference: Reference, rng: random.Random
) -> None:
    if rng.random() < TOPUP_SHARE:
        amount = Decimal(rng.randint(100, 5000)) / 100
        await topup(api, rng.choice(companies).id, amount, reference)
        return
    sender, receiver = rng.sample(companies, 2)
    amount = Decimal(rng.randint(1, 500)) / 100
    await transfer(api, sender.id, receiver.id, amount, reference)
