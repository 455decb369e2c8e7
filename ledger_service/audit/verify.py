"""`ledger verify`: an independent check of the books, recomputed from the events alone.

Checks, each reported with what and where (bounded: the first ``problems_max``):

* every aggregate's versions run 1, 2, 3, ... without gaps (a deleted event shows here);
* every wallet's money events form an unbroken hash chain (an edited amount shows here);
* each wallet's buckets recomputed from its events equal the state the application loads
  (snapshots included: a snapshot that disagrees with the events shows here);
* the trial balance over all postings sums to zero (each event posts a balanced pair, so this
  holds by construction; it guards the posting code itself);
* each wallet's account in the books equals its recomputed bucket balance (a movement whose
  bucket split does not add up to its amount shows here);
* every completed top-up credited its wallet exactly once; no other top-up credited at all;
* no usage event (CloudEvents source#id) changed a balance twice;
* credit grants: no grant's remainder goes below zero, money moves only into grants that were
  issued, a grant closes only with nothing left (its remainder taken just before), and one
  closed as expired had reached its ``expires_at`` (as of the scheduler's run);
* holds: a hold closes (settled, released or expired) only while active, once, with the amount
  it held, and never expires before its ``expires_at``; what the loaded wallet holds is the sum
  of its active holds;
* every refund gives back exactly what its usage event was charged (the refund's wallet entry
  is that usage's charge, of the same amount), with one credit, and no refund credit exists
  without its refund (so no usage is refunded twice);
* (optionally) the read models agree with the recomputation: wallet buckets and account
  totals, compared at the read models' own position (a consistent snapshot), so a projection
  that is merely behind is not reported; a row edited by hand is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

from ledger_service.audit.events import history
from ledger_service.domain.accounts import wallet_account
from ledger_service.domain.books import postings_of
from ledger_service.domain.chain import CREDIT_FIELDS, DEBIT_FIELDS, GENESIS_HASH, entry_hash
from ledger_service.domain.entries import DebitKind
from ledger_service.domain.grants import GrantStatus, grant_parts
from ledger_service.domain.payment_order import PaymentOrder
from ledger_service.domain.refund import REFUND_PREFIX, Refund
from ledger_service.domain.topup import TopupRequest
from ledger_service.domain.wallet import Wallet
from ledger_service.service.ledger import LedgerApplication
from ledger_service.service.payments import WEBHOOK_ACTOR
from ledger_service.service.runner import UsageKey

PROBLEMS_MAX = 50


@dataclass
class WalletFigures:
    company_id: str = ""
    included: Decimal = Decimal(0)
    prepaid: Decimal = Decimal(0)
    postpaid_used: Decimal = Decimal(0)
    chain: str = GENESIS_HASH
    grants: dict[str, Decimal] = field(default_factory=dict)
    """What is left of each grant issued, by id."""
    closed_grants: set[str] = field(default_factory=set)
    holds: dict[str, tuple[str, Decimal, Any]] = field(default_factory=dict)
    """The active holds by reference: (hold id, amount, expires_at)."""

    @property
    def held(self) -> Decimal:
        return sum((amount for _, amount, _ in self.holds.values()), Decimal(0))

    @property
    def granted(self) -> Decimal:
        return sum(self.grants.values(), Decimal(0))

    @property
    def balance(self) -> Decimal:
        return self.included + self.granted + self.prepaid - self.postpaid_used


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    events: int = 0
    wallets: dict[UUID, WalletFigures] = field(default_factory=dict)
    trial_balance: dict[str, Decimal] = field(default_factory=dict)

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < PROBLEMS_MAX:
            self.problems.append(text)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0


class _Scan:
    """One pass over the history collecting what the checks need."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.versions: dict[UUID, int] = {}
        self.topup_status: dict[UUID, str] = {}
        self.topup_credits: Counter[str] = Counter()
        self.usage_refs: Counter[str] = Counter()
        self.refunds: dict[str, Refund.Created] = {}
        """By the reference of their wallet entry."""
        self.refund_credits: dict[str, list[Decimal]] = {}
        self.grant_expiry: dict[str, Any] = {}
        self.order_topups: dict[UUID, UUID] = {}
        """Payment order -> the top-up it pays."""
        self.orders_succeeded: Counter[UUID] = Counter()
        """Top-up -> how many of its payment orders succeeded."""
        self.paid_by_webhook: set[UUID] = set()
        """Top-ups whose payment was recorded by a provider's webhook."""

    def add(self, position: int, event: Any) -> None:
        self.report.events += 1
        self._check_version(position, event)
        totals = self.report.trial_balance
        for posting in postings_of(event):
            totals[posting.account] = totals.get(posting.account, Decimal(0)) + posting.amount
        if isinstance(event, (Wallet.Credited, Wallet.Debited)):
            self._money(position, event)
        elif type(event).__qualname__ == "Wallet.Opened":
            self.report.wallets[event.originator_id] = WalletFigures(event.company_id)
        elif isinstance(event, (Wallet.GrantIssued, Wallet.GrantClosed)):
            self._grant(position, event)
        elif isinstance(event, (Wallet.HoldPlaced, Wallet.HoldClosed)):
            self._hold(position, event)
        elif type(event).__qualname__ == "Wallet.FailedUsageRecorded":
            self.usage_refs[event.reference] += 1
        elif isinstance(event, Refund.Created):
            entry = f"{REFUND_PREFIX}{event.usage_source}#{event.usage_id}"
            self.refunds[entry] = event
        elif isinstance(event, TopupRequest.Event):
            self.topup_status[event.originator_id] = _topup_status(event, self.topup_status)
            if isinstance(event, TopupRequest.Paid) and event.actor.endswith(WEBHOOK_ACTOR):
                self.paid_by_webhook.add(event.originator_id)
        elif isinstance(event, PaymentOrder.Created):
            self.order_topups[event.originator_id] = event.topup_id
        elif isinstance(event, PaymentOrder.Succeeded):
            self.orders_succeeded[self.order_topups[event.originator_id]] += 1

    def _check_version(self, position: int, event: Any) -> None:
        expected = self.versions.get(event.originator_id, 0) + 1
        if event.originator_version != expected:
            self.report.problem(
                f"version gap: aggregate {event.originator_id} has version "
                f"{event.originator_version} at position {position}, expected {expected}"
            )
        self.versions[event.originator_id] = event.originator_version

    def _money(self, position: int, event: Any) -> None:
        figures = self.report.wallets.setdefault(event.originator_id, WalletFigures())
        fields = CREDIT_FIELDS if isinstance(event, Wallet.Credited) else DEBIT_FIELDS
        expected = entry_hash(
            figures.chain, event.originator_version, {name: getattr(event, name) for name in fields}
        )
        if expected != event.entry_hash:
            self.report.problem(
                f"hash chain broken: wallet of {figures.company_id} at version "
                f"{event.originator_version} (position {position}): the entry does not match "
                "its hash - edited, inserted or reordered"
            )
        figures.chain = event.entry_hash
        split = event.split
        sign = 1 if isinstance(event, Wallet.Credited) else -1
        figures.included += sign * split.get("included", Decimal(0))
        figures.prepaid += sign * split.get("prepaid", Decimal(0))
        for grant, part in grant_parts(split):
            self._grant_part(position, figures, grant, sign * part)
        if isinstance(event, Wallet.Credited):
            figures.postpaid_used -= split.get("postpaid", Decimal(0))
            if event.kind == "topup":
                self.topup_credits[event.reference.split(":")[1]] += 1
            elif event.kind == "refund" and event.reference.startswith(REFUND_PREFIX):
                self.refund_credits.setdefault(event.reference, []).append(event.amount)
        else:
            figures.postpaid_used += split["postpaid"] + split["overage"]
            if event.kind == "usage":
                self.usage_refs[event.reference] += 1

    def _grant_part(self, position: int, figures: WalletFigures, grant: str, part: Decimal) -> None:
        left = figures.grants.get(grant)
        if left is None:
            self.report.problem(
                f"wallet of {figures.company_id} moved money in grant {grant}, which it was "
                f"never issued (position {position})"
            )
            left = Decimal(0)
        figures.grants[grant] = left + part
        if left + part < 0:
            self.report.problem(
                f"grant {grant} of {figures.company_id} went below zero: {left + part} "
                f"(position {position})"
            )

    def _grant(self, position: int, event: Any) -> None:
        figures = self.report.wallets.setdefault(event.originator_id, WalletFigures())
        if isinstance(event, Wallet.GrantIssued):
            figures.grants[event.grant_id] = Decimal(0)
            self.grant_expiry[event.grant_id] = event.expires_at
            return
        where = f"grant {event.grant_id} of {figures.company_id} (position {position})"
        if event.grant_id not in figures.grants or event.grant_id in figures.closed_grants:
            self.report.problem(f"{where} closed without being active")
        left = figures.grants.get(event.grant_id, Decimal(0))
        if left != 0:
            self.report.problem(f"{where} closed {event.status} with {left} left")
        expires_at = self.grant_expiry.get(event.grant_id)
        if event.status == GrantStatus.EXPIRED and (expires_at is None or event.as_of < expires_at):
            self.report.problem(f"{where} expired before its expires_at {expires_at}")
        figures.closed_grants.add(event.grant_id)

    def _hold(self, position: int, event: Any) -> None:
        figures = self.report.wallets.setdefault(event.originator_id, WalletFigures())
        where = f"hold {event.reference!r} of {figures.company_id} (position {position})"
        active = figures.holds.get(event.reference)
        if isinstance(event, Wallet.HoldPlaced):
            if active is not None:
                self.report.problem(f"{where} placed while it was active")
            figures.holds[event.reference] = (event.hold_id, event.amount, event.expires_at)
            return
        if active is None or active[0] != event.hold_id:
            self.report.problem(f"{where} closed {event.status} while not active")
            return
        if active[1] != event.amount:
            self.report.problem(f"{where} held {active[1]} and closed with {event.amount}")
        if event.status == "expired" and event.as_of < active[2]:
            self.report.problem(f"{where} expired before its expires_at {active[2]}")
        del figures.holds[event.reference]


def _topup_status(event: Any, known: dict[UUID, str]) -> str:
    name = type(event).__name__
    states = {
        "Requested": "pending",
        "Invoiced": "invoiced",
        "Completed": "completed",
        "Rejected": "rejected",
        "Cancelled": "cancelled",
    }
    return states.get(name, known.get(event.originator_id, "pending"))


class WalletBuckets(NamedTuple):
    """What a wallet's balance row says about its buckets (columns of ``rm_wallet_balances``)."""

    company_id: str
    included: Decimal
    prepaid: Decimal
    postpaid_used: Decimal
    granted: Decimal
    held: Decimal

    @property
    def buckets(self) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
        return (self.included, self.granted, self.prepaid, self.postpaid_used, self.held)


@dataclass(frozen=True)
class ReadModelSnapshot:
    """The read models as one consistent snapshot: position, wallet buckets, account totals."""

    position: int
    wallets: dict[UUID, WalletBuckets]
    accounts: dict[str, Decimal]


def verify(
    ledger: LedgerApplication,
    read_models: ReadModelSnapshot | None = None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    report = Report()
    scan = _Scan(report)
    frozen: tuple[dict[UUID, WalletFigures], dict[str, Decimal]] | None = None
    for item in history(ledger):
        if read_models is not None and frozen is None and item.position > read_models.position:
            frozen = _freeze(report)
        scan.add(item.position, item.event)
        if progress is not None and report.events % 10_000 == 0:
            progress(report.events)
    _check_books(scan, report)
    _check_refunds(ledger, scan, report)
    _check_loaded_state(ledger, report)
    if read_models is not None:
        wallets, accounts = frozen or _freeze(report)
        for problem in _compare(read_models, wallets, accounts):
            report.problem(problem)
    return report


def _freeze(report: Report) -> tuple[dict[UUID, WalletFigures], dict[str, Decimal]]:
    wallets = {
        k: replace(
            v, grants=dict(v.grants), closed_grants=set(v.closed_grants), holds=dict(v.holds)
        )
        for k, v in report.wallets.items()
    }
    return wallets, dict(report.trial_balance)


def _compare(
    snapshot: ReadModelSnapshot, wallets: dict[UUID, WalletFigures], accounts: dict[str, Decimal]
) -> Iterable[str]:
    where = f"(read models at position {snapshot.position})"
    for wallet_id, figures in wallets.items():
        row = snapshot.wallets.get(wallet_id)
        events = (
            figures.included, figures.granted, figures.prepaid, figures.postpaid_used, figures.held
        )  # fmt: skip
        if row is None:
            yield f"read model has no balance row for the wallet of {figures.company_id} {where}"
        elif row.buckets != events:
            yield (
                f"read model balance of {figures.company_id} is included/grants/prepaid/"
                f"postpaid_used/held {tuple(map(str, row.buckets))}, the events say "
                f"{tuple(map(str, events))} {where}"
            )
    for wallet_id in snapshot.wallets.keys() - wallets.keys():
        yield f"read model has a balance row for an unknown wallet {wallet_id} {where}"
    for account in accounts.keys() | snapshot.accounts.keys():
        ours, theirs = accounts.get(account, Decimal(0)), snapshot.accounts.get(account, Decimal(0))
        if ours != theirs:
            yield (
                f"read model total of account {account} is {theirs}, the events say {ours} {where}"
            )


def _check_books(scan: _Scan, report: Report) -> None:
    total = sum(report.trial_balance.values(), Decimal(0))
    if total != 0:
        report.problem(f"trial balance does not sum to zero: {total}")
    for wallet_id, figures in report.wallets.items():
        booked = report.trial_balance.get(wallet_account(wallet_id), Decimal(0))
        if booked != figures.balance:
            report.problem(
                f"wallet of {figures.company_id}: its account in the books holds {booked}, "
                f"its buckets add up to {figures.balance} (a split that does not match its amount)"
            )
        for grant in figures.closed_grants:
            if figures.grants[grant] != 0:
                report.problem(
                    f"grant {grant} of {figures.company_id} is closed and holds "
                    f"{figures.grants[grant]}"
                )
    for topup_id, status in scan.topup_status.items():
        credits = scan.topup_credits.get(str(topup_id), 0)
        if credits != (1 if status == "completed" else 0):
            report.problem(f"top-up {topup_id} is {status} and credited {credits} times")
    _check_payment_orders(scan, report)
    for reference, count in scan.usage_refs.items():
        if count > 1:
            report.problem(f"usage {reference} was applied {count} times")


def _check_payment_orders(scan: _Scan, report: Report) -> None:
    """A succeeded order pays exactly its top-up, once; a webhook pays only through one."""
    for topup_id, count in scan.orders_succeeded.items():
        status = scan.topup_status.get(topup_id)
        if count > 1 or status != "completed":
            report.problem(f"top-up {topup_id} is {status} with {count} succeeded payment orders")
    for topup_id in scan.paid_by_webhook - set(scan.orders_succeeded):
        report.problem(f"top-up {topup_id} was paid by a webhook without a succeeded order")


def _check_refunds(ledger: LedgerApplication, scan: _Scan, report: Report) -> None:
    """Refunds are rare: each one's usage charge is read back from the store."""
    for reference, refund in scan.refunds.items():
        credits = scan.refund_credits.get(reference, [])
        if credits != [refund.amount]:
            report.problem(f"{reference} of {refund.amount} was credited {credits}")
        version = refund.debit_version
        charge = ledger.charge_entry(
            UsageKey(
                refund.usage_source, refund.usage_id, refund.company_id, refund.wallet_id, version
            )
        )
        usage = f"{refund.usage_source}#{refund.usage_id}"
        if not (
            charge is not None
            and charge.kind == DebitKind.USAGE
            and charge.reference == usage
            and charge.amount == refund.amount
        ):
            report.problem(
                f"{reference} of {refund.amount} does not match the usage charge it names "
                f"(wallet {refund.wallet_id} version {version})"
            )
    for reference in scan.refund_credits.keys() - scan.refunds.keys():
        report.problem(f"{reference} was credited without a refund")


def _check_loaded_state(ledger: LedgerApplication, report: Report) -> None:
    for wallet_id, figures in report.wallets.items():
        try:
            wallet: Wallet = ledger.repository.get(wallet_id)
        except Exception as exc:
            report.problem(f"wallet of {figures.company_id} cannot be loaded: {exc}")
            continue
        loaded = (
            wallet.included, wallet.prepaid, wallet.postpaid_used, _remainders(wallet), wallet.held
        )  # fmt: skip
        recomputed = (
            figures.included, figures.prepaid, figures.postpaid_used, figures.grants, figures.held
        )  # fmt: skip
        if loaded != recomputed:
            report.problem(
                f"wallet of {figures.company_id}: loaded buckets {loaded} differ "
                f"from the events' {recomputed}"
            )


def _remainders(wallet: Wallet) -> dict[str, Decimal]:
    return {grant_id: grant.remaining for grant_id, grant in wallet.grants.items()}


def read_model_snapshot(conn: Any, schema: str) -> ReadModelSnapshot:
    """Read position, balances and totals in one REPEATABLE READ transaction (psycopg)."""
    from projections.tables import PROJECTION_NAME, ReadModelTables

    tables = ReadModelTables(schema)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        row = conn.execute(
            f"SELECT position FROM {tables['rm_projection_positions']} WHERE name = %s",
            (PROJECTION_NAME,),
        ).fetchone()
        wallets = {
            r[0]: WalletBuckets(*r[1:])
            for r in conn.execute(
                f"SELECT wallet_id, {', '.join(WalletBuckets._fields)} "
                f"FROM {tables['rm_wallet_balances']}"
            )
        }
        accounts = {
            r[0]: r[1]
            for r in conn.execute(f"SELECT account, total FROM {tables['rm_account_totals']}")
        }
    return ReadModelSnapshot(int(row[0]) if row else 0, wallets, accounts)
