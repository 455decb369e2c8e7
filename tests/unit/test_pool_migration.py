"""Legacy per-sender pools into the shared pool: nothing created or lost, nothing doubled, a
re-run changes nothing, a crash half-way resumes, the legacy pools end at zero and closed."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_service.domain.books import trial_balance
from ledger_service.domain.errors import InvalidArgument, NotPermitted
from ledger_service.domain.ids import wallet_id
from ledger_service.domain.usage import Usage
from ledger_service.domain.wallet import Wallet
from ledger_service.service.ledger import LedgerApplication
from ledger_service.service.pools import MergePool, migrate_pools
from tests.fakes import InMemoryLedger
from tests.unit.test_application import all_events

D = Decimal
RATE_CARD = {"marketing": "1"}
Pool = tuple[int, int, int, int]
"""(included quota, prepaid, postpaid limit, messages used): one legacy pool's history."""


def legacy_company(ledger: LedgerApplication, company: str, pools: list[Pool]) -> list[str]:
    senders = []
    for n, (quota, prepaid, limit, used) in enumerate(pools):
        sender = f"{company}-w{n}"
        senders.append(sender)
        ledger.open_wallet(
            company_id=company, currency="USD", mode="per_sender", pool_sender_id=sender,
            postpaid_limit=str(limit), included_quota=str(quota), rate_card=RATE_CARD,
            actor="op", idempotency_key=f"open-{sender}",
        )  # fmt: skip
        if prepaid:
            ledger.credit_wallet(
                company_id=company, pool_sender_id=sender, amount=str(prepaid), kind="grant",
                reference="fund", actor="op", idempotency_key=f"fund-{sender}",
            )  # fmt: skip
        for m in range(used):
            ledger.apply_usage(message(company, sender, f"m{m}"))
    return senders


def message(company: str, sender: str, event_id: str) -> Usage:
    return Usage(
        source="//t", event_id=f"{sender}-{event_id}", company_id=company, waba_id=sender,
        conversation_id="c", category="marketing", status="delivered", units=1,
    )  # fmt: skip


def pools_of(ledger: LedgerApplication, company: str, senders: list[str]) -> list[Wallet]:
    return [ledger.get_wallet(company, s) for s in senders]


def company_balance(ledger: LedgerApplication, company: str, senders: list[str]) -> Decimal:
    wallets = pools_of(ledger, company, senders)
    if any(w.merged_into for w in wallets):
        wallets.append(ledger.get_wallet(company))
    return sum((w.balance for w in wallets), D(0))


pool = st.tuples(st.integers(0, 20), st.integers(0, 50), st.integers(0, 30), st.integers(0, 60))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools=st.lists(pool, min_size=1, max_size=4))
def test_money_is_kept_nothing_doubles_and_a_rerun_is_a_no_op(pools: list[Pool]) -> None:
    ledger = InMemoryLedger()
    try:
        senders = legacy_company(ledger, "acme", pools)
        before = company_balance(ledger, "acme", senders)
        report = migrate_pools(ledger, "acme", senders, actor="ops")
        assert report.shared_wallet == "opened"
        assert report.moved == before
        shared = ledger.get_wallet("acme")
        assert shared.balance == before, "the shared pool holds what the legacy pools held"
        assert shared.senders == set(senders)
        assert not (shared.prepaid and shared.postpaid_used), "never money and debt at once"
        for legacy in pools_of(ledger, "acme", senders):
            assert (legacy.balance, legacy.included, legacy.prepaid, legacy.postpaid_used) == (
                0,
                0,
                0,
                0,
            )
            assert (legacy.senders, legacy.merged_into) == (set(), shared.id)
        assert shared.included_quota == sum(p[0] for p in pools)
        totals = trial_balance(all_events(ledger))  # type: ignore[arg-type]
        assert sum(totals.values()) == 0
        assert totals.get("pools:migration", D(0)) == 0
        count = len(all_events(ledger))
        again = migrate_pools(ledger, "acme", senders, actor="ops")
        assert len(all_events(ledger)) == count, "a re-run writes nothing"
        statuses = [p["status"] for p in again.pools]
        assert statuses == ["merged"] * len(senders), "the first run's answers, replayed"
        assert company_balance(ledger, "acme", senders) == before
    finally:
        ledger.close()


def test_a_crash_half_way_resumes_and_usage_follows_the_sender() -> None:
    ledger = InMemoryLedger()
    senders = legacy_company(ledger, "acme", [(5, 10, 5, 2), (0, 0, 10, 4), (3, 7, 0, 0)])
    before = company_balance(ledger, "acme", senders)
    handle: Callable[..., Any] = ledger.handle
    merged: list[str] = []

    def crash_after_one(command: Any) -> Any:
        if isinstance(command, MergePool) and merged:
            raise RuntimeError("killed")
        result = handle(command)
        if isinstance(command, MergePool):
            merged.append(command.waba_id)
        return result

    ledger.handle = crash_after_one  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        migrate_pools(ledger, "acme", senders, actor="ops")
    ledger.handle = handle  # type: ignore[method-assign]
    # Half-way: one pool merged, the others untouched and still taking their senders' usage.
    first, rest = merged[0], [s for s in senders if s not in merged]
    ledger.apply_usage(message("acme", first, "after"))  # the shared pool's now
    ledger.apply_usage(message("acme", rest[0], "during"))  # still its legacy pool's
    assert ledger.get_wallet("acme", rest[0]).postpaid_used == D(5)  # 4 + 1 messages at 1
    report = migrate_pools(ledger, "acme", senders, actor="ops")
    assert report.shared_wallet == "opened", "the re-run finds its own opening"
    assert company_balance(ledger, "acme", senders) == before - 2
    assert ledger.get_wallet("acme").senders == set(senders)
    with pytest.raises(InvalidArgument):
        ledger.link_sender(
            company_id="acme", pool_sender_id=first, waba_id=first, actor="op",
            idempotency_key="relink",
        )  # fmt: skip
    assert ledger.get_wallet_by_id(wallet_id("acme")).included_quota == D(8)


def test_a_dry_run_writes_nothing_and_pools_with_holds_wait() -> None:
    ledger = InMemoryLedger()
    senders = legacy_company(ledger, "acme", [(0, 10, 0, 1)])
    count = len(all_events(ledger))
    plan = migrate_pools(ledger, "acme", senders, actor="ops", dry_run=True)
    assert (plan.shared_wallet, plan.moved) == ("to_open", D(9))
    assert [p["status"] for p in plan.pools] == ["planned"]
    assert len(all_events(ledger)) == count
    ledger.place_hold(
        company_id="acme", waba_id=senders[0], category="marketing", units=1, reference="h",
        actor="svc", idempotency_key="h",
    )  # fmt: skip
    with pytest.raises(NotPermitted):
        migrate_pools(ledger, "acme", senders, actor="ops")
    assert ledger.get_wallet("acme", senders[0]).merged_into is None
