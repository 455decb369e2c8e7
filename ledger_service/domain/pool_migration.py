"""Legacy per-sender pools into the company's shared pool: the one-company-many-WABAs rollout.

``merge_pool`` empties one legacy pool into the shared pool in memory; the caller saves both
wallets and the sender's registration in one transaction, so a pool is merged entirely or not
at all. Each bucket crosses as a pair of entries of kind ``migration`` against the
``pools:migration`` clearing account, which nets to zero in that save:

* the included quota left this cycle -> the shared pool's included bucket;
* prepaid money -> the shared pool's prepaid bucket (repaying any debt it has first, as every
  prepaid credit does);
* postpaid debt -> the shared pool, drawn from its prepaid money first and the rest as debt
  (a pool never holds prepaid money and debt at once).

Then the sender is unlinked from the legacy pool and linked to the shared one, and the legacy
pool records ``PoolMerged``: closed for good (no sender can be linked to it again). Nothing is
created or lost: the company's balance over its pools is the same before and after.

Refused, writing nothing: a pool with active holds (they reserve its money until settled or
released) or credit grants left (their expiry and priority belong to the pool they were given
to; let them expire or void them first).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ledger_service.domain import accounts
from ledger_service.domain.entries import CreditBucket, CreditKind, DebitKind, DebitSplit
from ledger_service.domain.errors import CurrencyMismatch, InvalidArgument, NotPermitted
from ledger_service.domain.money import ZERO
from ledger_service.domain.registry import SenderRegistration
from ledger_service.domain.wallet import PoolMode, Wallet


@dataclass(frozen=True, slots=True)
class PoolMove:
    """What a legacy pool held, and so what crossed into the shared pool."""

    sender: str
    included: Decimal
    prepaid: Decimal
    debt: Decimal

    @property
    def balance(self) -> Decimal:
        return self.included + self.prepaid - self.debt


def pool_move(legacy: Wallet) -> PoolMove:
    """What merging ``legacy`` would move (the plan of a dry run)."""
    sender = legacy.pool_sender_id or ""
    return PoolMove(sender, legacy.included, legacy.prepaid, legacy.postpaid_used)


def check_mergeable(legacy: Wallet, shared: Wallet) -> None:
    if legacy.mode is not PoolMode.PER_SENDER or shared.mode is not PoolMode.SHARED:
        raise InvalidArgument("a merge takes a per_sender pool into a shared pool")
    if legacy.company_id != shared.company_id:
        raise InvalidArgument("a pool merges into its own company's shared pool")
    if legacy.currency != shared.currency:
        raise CurrencyMismatch(
            f"the pool of {legacy.pool_sender_id} is kept in {legacy.currency}, "
            f"the shared pool in {shared.currency}"
        )
    if legacy.holds:
        raise NotPermitted(
            f"the pool of {legacy.pool_sender_id} has {len(legacy.holds)} active holds: "
            "merge it once they are settled, released or expired"
        )
    if legacy.granted:
        raise NotPermitted(
            f"the pool of {legacy.pool_sender_id} has credit grants left ({legacy.granted}): "
            "merge it once they expire, or void them"
        )


def merge_pool(
    legacy: Wallet, shared: Wallet, registration: SenderRegistration, *, actor: str
) -> PoolMove:
    """Empty ``legacy`` into ``shared`` and move its sender across (in memory)."""
    check_mergeable(legacy, shared)
    move = pool_move(legacy)
    reference = f"pool-migration:{move.sender}"
    included = DebitSplit(move.included, ZERO, ZERO, ZERO)
    _move_money(legacy, shared, included, CreditBucket.INCLUDED, reference, actor)
    prepaid = DebitSplit(ZERO, move.prepaid, ZERO, ZERO)
    _move_money(legacy, shared, prepaid, CreditBucket.PREPAID, reference, actor)
    _move_debt(legacy, shared, move.debt, reference, actor)
    for sender in sorted(legacy.senders):
        legacy.unlink_sender(sender, actor=actor)
        registration.release(wallet_id=legacy.id, actor=actor)
        shared.link_sender(sender, actor=actor)
        registration.assign(wallet_id=shared.id, company_id=shared.company_id, actor=actor)
    legacy._pool_merged(into_wallet_id=shared.id, actor=actor)
    return move


def _move_money(
    legacy: Wallet,
    shared: Wallet,
    split: DebitSplit,
    bucket: CreditBucket,
    reference: str,
    actor: str,
) -> None:
    """One bucket across: out of ``legacy`` as ``split`` says, into ``shared``'s ``bucket``."""
    amount = split.included + split.prepaid
    if amount <= 0:
        return
    _out(legacy, amount, split, reference, actor)
    shared.credit(
        amount, bucket=bucket, kind=CreditKind.MIGRATION,
        counter_account=accounts.POOL_MIGRATION, reference=reference, actor=actor,
    )  # fmt: skip


def _move_debt(legacy: Wallet, shared: Wallet, debt: Decimal, reference: str, actor: str) -> None:
    if debt <= 0:
        return
    legacy.credit(
        debt, bucket=CreditBucket.POSTPAID_USED, kind=CreditKind.MIGRATION,
        counter_account=accounts.POOL_MIGRATION, reference=reference, actor=actor,
        evaluate_triggers=False,
    )  # fmt: skip
    from_prepaid = min(debt, shared.prepaid)
    split = DebitSplit(ZERO, from_prepaid, debt - from_prepaid, ZERO)
    _out(shared, debt, split, reference, actor)
    shared._evaluate_triggers()


def _out(wallet: Wallet, amount: Decimal, split: DebitSplit, reference: str, actor: str) -> None:
    """A migration debit. Alerts are evaluated on the shared pool only (its credits and debt
    move do): a legacy pool being emptied for good warns nobody."""
    wallet._debit_entry(
        amount,
        split,
        kind=DebitKind.MIGRATION,
        counter_account=accounts.POOL_MIGRATION,
        reference=reference,
        actor=actor,
    )
