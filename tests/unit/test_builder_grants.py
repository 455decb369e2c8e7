"""The batch builder alone: credit grants on the wallet row (total, active grants JSON, soonest
expiry) and on ledger entries (their grant parts), as the aggregate holds them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ledger_service.domain.grants import grant_id
from ledger_service.domain.wallet import Wallet
from tests.unit.builder_support import D, Log, open_wallet, use

NOW = datetime.now(UTC)


def issue(wallet: Wallet, reference: str, amount: str, days: int | None, priority: int = 10) -> str:
    gid = str(grant_id(wallet.id, reference))
    wallet.issue_grant(
        grant_id=gid, amount=D(amount), reason="promo", reference=reference, actor="op",
        priority=priority, expires_at=None if days is None else NOW + timedelta(days=days),
    )  # fmt: skip
    return gid


def row_grants(log: Log, wallet: Wallet) -> dict[str, str]:
    log.builder.flush_grants()
    grants = json.loads(log.wallet(wallet).grants)
    return {g["reference"]: g["remaining"] for g in grants.values()}


def test_grants_on_the_row_follow_issue_usage_expiry_and_void() -> None:
    log = Log()
    wallet = open_wallet()
    wallet.change_included_quota(D(0), actor="op")
    soon = issue(wallet, "soon", "3", days=2)
    issue(wallet, "later", "5", days=9)
    never = issue(wallet, "never", "4", days=None)
    use(wallet, "2")  # from "soon"
    log.record(wallet)
    row = log.wallet(wallet)
    assert row_grants(log, wallet) == {"soon": "1", "later": "5", "never": "4"}
    assert (row.granted, row.balance) == (D(10), D(10) + row.included)
    assert row.next_grant_expiry_at == wallet.grants[soon].expires_at
    debit = [e for e in log.builder.entries if e.direction == "debit"][-1]
    assert (debit.amount, debit.grants) == (D(-2), D(2))

    wallet.expire_due_grants(NOW + timedelta(days=3), actor="cycles")
    wallet.void_grant(never, actor="op")
    log.record(wallet)
    row = log.wallet(wallet)
    assert row_grants(log, wallet) == {"later": "5"}
    assert row.granted == D(5) == wallet.granted
    assert row.next_grant_expiry_at == NOW + timedelta(days=9)
    expiries = [(e.kind, e.amount, e.grants) for e in log.builder.entries[-2:]]
    assert expiries == [("expiry", D(-1), D(1)), ("expiry", D(-4), D(4))]
    assert log.builder.accounts["promotions"].total == D(-7)  # 12 granted, 1 + 4 taken back
