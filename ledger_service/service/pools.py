"""Moving a company from legacy per-sender pools to one shared pool (``domain.pool_migration``).

``migrate_pools`` is resumable and idempotent: each step is a command with a key derived from
the company and the pool, so a re-run replays what was done and does the rest; a crash between
pools leaves every pool either merged or untouched. Usage arriving meanwhile is applied to the
pool that owns its sender at that moment: a merge and a deduction on the same pool collide on
its version, and the loser is decided again from what the winner left.

Opening the shared pool (when the company has none): in the legacy pools' currency, with their
rate card (they must agree, else open it yourself first), the sum of their postpaid limits, and
no included quota until every pool is merged (the quota left this cycle moves across with each
pool); then the sum of their quotas applies from the next cycle. An existing shared pool is
used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar, Literal, NotRequired, TypedDict

from ledger_service.domain.errors import (
    CurrencyMismatch,
    InvalidArgument,
    WalletAlreadyExists,
    WalletNotFound,
)
from ledger_service.domain.ids import check_key
from ledger_service.domain.money import ZERO, format_amount
from ledger_service.domain.pool_migration import PoolMove, merge_pool, pool_move
from ledger_service.domain.wallet import PoolMode, Wallet
from ledger_service.service.runner import Command, Decision
from ledger_service.service.wallets import ConfigureWallet, OpenWallet

if TYPE_CHECKING:
    from ledger_service.service.ledger import LedgerApplication

MIGRATION_ACTOR_PREFIX = "pools-migrate"
PoolStatus = Literal["planned", "merged", "already_merged"]


class PoolMerged(TypedDict):
    sender: str
    status: PoolStatus
    included: str
    prepaid: str
    debt: str
    position: NotRequired[int | None]


def _merged(move: PoolMove, status: PoolStatus) -> PoolMerged:
    return {
        "sender": move.sender,
        "status": status,
        "included": format_amount(move.included),
        "prepaid": format_amount(move.prepaid),
        "debt": format_amount(move.debt),
    }


@dataclass(frozen=True, kw_only=True)
class MergePool(Command[PoolMerged]):
    """Empty the legacy pool of ``waba_id`` into the company's shared pool, in one save."""

    name: ClassVar[str] = "merge_pool"
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"company_id"})

    company_id: str
    waba_id: str

    def scope(self, ledger: LedgerApplication) -> str:
        return self.company_id

    def decide(self, ledger: LedgerApplication) -> Decision[PoolMerged]:
        legacy = ledger.get_wallet(self.company_id, self.waba_id)
        shared = ledger.get_wallet(self.company_id)
        if legacy.merged_into == shared.id:
            return Decision([], _merged(PoolMove(self.waba_id, ZERO, ZERO, ZERO), "already_merged"))
        registration = ledger.get_sender_registration(self.waba_id)
        move = merge_pool(legacy, shared, registration, actor=self.actor)
        return Decision([legacy, shared, registration], _merged(move, "merged"))


@dataclass
class MigrationReport:
    company_id: str
    dry_run: bool
    shared_wallet: Literal["existing", "opened", "to_open"]
    pools: list[PoolMerged] = field(default_factory=list)

    @property
    def moved(self) -> Decimal:
        """The money the merged (or, dry, the planned) pools brought: their balances."""
        return sum(
            (
                Decimal(p["included"]) + Decimal(p["prepaid"]) - Decimal(p["debt"])
                for p in self.pools
                if p["status"] != "already_merged"
            ),
            ZERO,
        )


def migrate_pools(
    ledger: LedgerApplication,
    company_id: str,
    senders: list[str],
    *,
    actor: str,
    dry_run: bool = False,
) -> MigrationReport:
    """Merge the legacy pools of ``senders`` (the company's per-sender pools) into its shared
    pool, opening it if needed; ``dry_run`` reports what would move and writes nothing."""
    check_key(company_id, "company_id")
    legacy = [ledger.get_wallet(company_id, s) for s in sorted(set(senders))]
    if any(w.mode is not PoolMode.PER_SENDER for w in legacy):
        raise InvalidArgument("only per_sender pools are merged")
    shared = _existing_shared(ledger, company_id)
    if shared is None and legacy:
        _check_openable(legacy)
    status: Literal["existing", "opened", "to_open"] = "existing" if shared else "to_open"
    report = MigrationReport(company_id, dry_run, status)
    if dry_run:
        for wallet in legacy:
            merged = shared is not None and wallet.merged_into == shared.id
            report.pools.append(
                _merged(pool_move(wallet), "already_merged" if merged else "planned")
            )
        return report
    if not legacy:
        return report
    opened = _open_shared(ledger, company_id, legacy, actor)
    report.shared_wallet = "opened" if opened else "existing"
    for wallet in legacy:
        sender = wallet.pool_sender_id or ""
        report.pools.append(ledger.handle(MergePool(
            company_id=company_id, waba_id=sender, actor=actor,
            idempotency_key=f"{MIGRATION_ACTOR_PREFIX}:{sender}",
        )))  # fmt: skip
    if opened:
        quota = sum((w.included_quota for w in legacy), ZERO)
        ledger.handle(ConfigureWallet(
            company_id=company_id, included_quota=quota, actor=actor,
            idempotency_key=f"{MIGRATION_ACTOR_PREFIX}:quota",
        ))  # fmt: skip
    return report


def _existing_shared(ledger: LedgerApplication, company_id: str) -> Wallet | None:
    try:
        return ledger.get_wallet(company_id)
    except WalletNotFound:
        return None


def _check_openable(legacy: list[Wallet]) -> None:
    if len({w.currency for w in legacy}) > 1:
        raise CurrencyMismatch("the legacy pools are kept in several currencies")
    if len({tuple(sorted(w.rate_card.items())) for w in legacy}) > 1:
        raise InvalidArgument(
            "the legacy pools have different rate cards: open the shared pool first "
            "(POST /v1/wallets) with the one it should have"
        )


def _open_shared(
    ledger: LedgerApplication, company_id: str, legacy: list[Wallet], actor: str
) -> bool:
    """Open the shared pool (True), or find it opened by someone else (False). A re-run finds
    the key it opened it with and answers True again."""
    _check_openable(legacy)
    first = legacy[0]
    try:
        ledger.handle(OpenWallet(
            company_id=company_id, currency=first.currency, mode=PoolMode.SHARED,
            postpaid_limit=sum((w.postpaid_limit for w in legacy), ZERO),
            included_quota=ZERO, rate_card=dict(first.rate_card), actor=actor,
            idempotency_key=f"{MIGRATION_ACTOR_PREFIX}:open",
        ))  # fmt: skip
    except WalletAlreadyExists:
        return False
    return True
