"""Partition batches applied at the same time never share a company (and so a wallet)."""

from __future__ import annotations

import asyncio
from typing import Any

from ledger_service.ingestion.consumer import UsageConsumer
from tests.unit.scripted_consumer import scripted_consumer


def consumer(concurrency: int) -> UsageConsumer:
    return scripted_consumer(None, concurrency=concurrency)


async def run_batches(owner: UsageConsumer, batches: dict[str, set[str]]) -> list[Any]:
    """Each batch holds its companies for a moment; the (start, end, name) of each."""
    spans: list[Any] = []

    async def batch(name: str, companies: set[str]) -> None:
        async with owner._slots, owner._companies_to_oneself(companies):
            started = asyncio.get_running_loop().time()
            await asyncio.sleep(0.05)
            spans.append((started, asyncio.get_running_loop().time(), name))

    await asyncio.gather(*(batch(name, companies) for name, companies in batches.items()))
    return spans


def overlapping(spans: list[Any], a: str, b: str) -> bool:
    (start_a, end_a, _), (start_b, end_b, _) = (
        next(s for s in spans if s[2] == a),
        next(s for s in spans if s[2] == b),
    )
    return start_a < end_b and start_b < end_a


async def test_batches_of_different_companies_run_together() -> None:
    spans = await run_batches(consumer(3), {"p0": {"a"}, "p1": {"b"}, "p2": {"c", "d"}})
    assert overlapping(spans, "p0", "p1")
    assert overlapping(spans, "p1", "p2")


async def test_batches_sharing_a_company_wait_for_each_other() -> None:
    # A keyless record of company "a" landed in p1 as well.
    spans = await run_batches(consumer(3), {"p0": {"a"}, "p1": {"b", "a"}, "p2": {"c"}})
    assert not overlapping(spans, "p0", "p1")
    assert overlapping(spans, "p0", "p2")
    assert len(spans) == 3


async def test_concurrency_one_is_one_batch_at_a_time() -> None:
    spans = await run_batches(consumer(1), {"p0": {"a"}, "p1": {"b"}})
    assert not overlapping(spans, "p0", "p1")
