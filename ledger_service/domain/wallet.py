"""The Wallet aggregate: one company's balance pool and every rule about moving money in it.

Buckets and the two derived figures (also defined in README.md):

* ``included``     - this cycle's included quota left (>= 0);
* ``prepaid``      - paid-for money left (>= 0);
* ``postpaid_used`` - credit drawn on the postpaid limit, including any overage (>= 0);
* ``balance   = included + prepaid - postpaid_used``;
* ``available = balance + postpaid_limit`` (negative only after overage).

Usage drains included -> prepaid -> postpaid credit. Usage is a fact, not a request: beyond the
postpaid limit the remainder is still recorded, as ``overage``. Credits to ``prepaid`` first repay
drawn postpaid credit, so a wallet never holds prepaid money and debt at the same time.

Command methods check first (``check_*``) and only then trigger an event; the event methods
(underscore-prefixed, decorated with ``@event``) hold no rules, so replay never re-decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger_service.domain import accounts
from ledger_service.domain.chain import GENESIS_HASH, entry_hash
from ledger_service.domain.errors import (
    InsufficientFunds,
    InvalidArgument,
    SenderAlreadyLinked,
    SenderNotLinked,
    UnknownCategory,
)
from ledger_service.domain.ids import check_key, wallet_id
from ledger_service.domain.money import ZERO, canonical, parse_amount


class PoolMode(StrEnum):
    SHARED = "shared"
    PER_SENDER = "per_sender"


class CreditKind(StrEnum):
    TOPUP = "topup"
    GRANT = "grant"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    TRANSFER = "transfer"


class CreditBucket(StrEnum):
    INCLUDED = "included"
    PREPAID = "prepaid"


class DebitKind(StrEnum):
    USAGE = "usage"
    TRANSFER = "transfer"


@dataclass(frozen=True, slots=True)
class DebitSplit:
    """How one debit was drawn from the buckets, in drain order."""

    included: Decimal
    prepaid: Decimal
    postpaid: Decimal
    overage: Decimal

    def as_dict(self) -> dict[str, Decimal]:
        return {
            "included": self.included,
            "prepaid": self.prepaid,
            "postpaid": self.postpaid,
            "overage": self.overage,
        }


def split_debit(
    amount: Decimal,
    *,
    included: Decimal,
    prepaid: Decimal,
    postpaid_used: Decimal,
    postpaid_limit: Decimal,
) -> DebitSplit:
    """Drain ``amount`` in bucket order; what no bucket covers is overage."""
    from_included = min(amount, max(included, ZERO))
    rest = amount - from_included
    from_prepaid = min(rest, max(prepaid, ZERO))
    rest -= from_prepaid
    from_postpaid = min(rest, max(postpaid_limit - postpaid_used, ZERO))
    return DebitSplit(from_included, from_prepaid, from_postpaid, rest - from_postpaid)


class Wallet(Aggregate):
    """A company's balance pool (or, in legacy ``per_sender`` mode, one sender's pool)."""

    # The two money events are declared explicitly: they are the ledger's core contract, read by
    # projections, the books and audit tooling. Never edit them; version with class_version.
    class Credited(Aggregate.Event):
        amount: Decimal
        bucket: str
        split: dict[str, Decimal]
        kind: str
        counter_account: str
        reference: str
        actor: str
        entry_hash: str

    class Debited(Aggregate.Event):
        amount: Decimal
        split: dict[str, Decimal]
        kind: str
        counter_account: str
        reference: str
        sender_id: str | None
        conversation_id: str | None
        category: str | None
        units: int
        unit_price: Decimal | None
        actor: str
        entry_hash: str

    @staticmethod
    def create_id(company_id: str, pool_sender_id: str | None = None, **_: Any) -> UUID:
        return wallet_id(company_id, pool_sender_id)

    @classmethod
    def open(
        cls,
        *,
        company_id: str,
        currency: str,
        mode: PoolMode,
        postpaid_limit: Decimal,
        included_quota: Decimal,
        rate_card: dict[str, Decimal],
        actor: str,
        pool_sender_id: str | None = None,
    ) -> Wallet:
        check_key(company_id, "company_id")
        if (mode is PoolMode.PER_SENDER) != (pool_sender_id is not None):
            raise InvalidArgument("a per_sender wallet needs pool_sender_id; a shared one must not")
        if pool_sender_id is not None:
            check_key(pool_sender_id, "pool_sender_id")
        return cls(
            company_id=company_id,
            currency=currency,
            mode=mode.value,
            pool_sender_id=pool_sender_id,
            postpaid_limit=parse_amount(postpaid_limit, field="postpaid_limit"),
            included_quota=parse_amount(included_quota, field="included_quota"),
            rate_card=check_rate_card(rate_card),
            actor=actor,
        )

    @event("Opened")
    def __init__(
        self,
        company_id: str,
        currency: str,
        mode: str,
        pool_sender_id: str | None,
        postpaid_limit: Decimal,
        included_quota: Decimal,
        rate_card: dict[str, Decimal],
        actor: str,
    ) -> None:
        self.company_id = company_id
        self.currency = currency
        self.mode = PoolMode(mode)
        self.pool_sender_id = pool_sender_id
        self.postpaid_limit = postpaid_limit
        self.included_quota = included_quota
        self.rate_card = dict(rate_card)
        self.senders: set[str] = set()
        self.included = ZERO
        self.prepaid = ZERO
        self.postpaid_used = ZERO
        self.overage_total = ZERO
        self.entry_hash = GENESIS_HASH

    # -- derived figures ------------------------------------------------------------------

    @property
    def balance(self) -> Decimal:
        return canonical(self.included + self.prepaid - self.postpaid_used)

    @property
    def available(self) -> Decimal:
        return canonical(self.balance + self.postpaid_limit)

    @property
    def account(self) -> str:
        return accounts.wallet_account(self.id)

    # -- senders --------------------------------------------------------------------------

    def link_sender(self, waba_id: str, *, actor: str) -> None:
        check_key(waba_id, "waba_id")
        if waba_id in self.senders:
            raise SenderAlreadyLinked(f"sender {waba_id} is already linked to this wallet")
        if self.mode is PoolMode.PER_SENDER and waba_id != self.pool_sender_id:
            raise InvalidArgument(
                f"a per_sender wallet only takes its own sender {self.pool_sender_id}"
            )
        self._sender_linked(waba_id=waba_id, actor=actor)

    @event("SenderLinked")
    def _sender_linked(self, waba_id: str, actor: str) -> None:
        self.senders.add(waba_id)

    def unlink_sender(self, waba_id: str, *, actor: str) -> None:
        self.check_sender_linked(waba_id)
        self._sender_unlinked(waba_id=waba_id, actor=actor)

    @event("SenderUnlinked")
    def _sender_unlinked(self, waba_id: str, actor: str) -> None:
        self.senders.discard(waba_id)

    def check_sender_linked(self, waba_id: str) -> None:
        if waba_id not in self.senders:
            raise SenderNotLinked(f"sender {waba_id} is not linked to wallet of {self.company_id}")

    # -- configuration --------------------------------------------------------------------

    def change_postpaid_limit(self, limit: Decimal, *, actor: str) -> None:
        limit = parse_amount(limit, field="postpaid_limit")
        self._postpaid_limit_changed(
            postpaid_limit=limit, previous=self.postpaid_limit, actor=actor
        )

    @event("PostpaidLimitChanged")
    def _postpaid_limit_changed(
        self, postpaid_limit: Decimal, previous: Decimal, actor: str
    ) -> None:
        self.postpaid_limit = postpaid_limit

    def change_rate_card(self, rate_card: dict[str, Decimal], *, actor: str) -> None:
        self._rate_card_changed(rate_card=check_rate_card(rate_card), actor=actor)

    @event("RateCardChanged")
    def _rate_card_changed(self, rate_card: dict[str, Decimal], actor: str) -> None:
        self.rate_card = dict(rate_card)

    def change_included_quota(self, quota: Decimal, *, actor: str) -> None:
        quota = parse_amount(quota, field="included_quota")
        self._included_quota_changed(included_quota=quota, actor=actor)

    @event("IncludedQuotaChanged")
    def _included_quota_changed(self, included_quota: Decimal, actor: str) -> None:
        self.included_quota = included_quota

    def price_of(self, category: str, units: int) -> Decimal:
        """Rate-card price of ``units`` messages of ``category``."""
        try:
            unit_price = self.rate_card[category]
        except KeyError:
            raise UnknownCategory(
                f"category {category!r} is not on the rate card of {self.company_id}"
            ) from None
        return canonical(unit_price * units)

    # -- money movements ------------------------------------------------------------------

    def credit(
        self,
        amount: Decimal,
        *,
        bucket: CreditBucket,
        kind: CreditKind,
        counter_account: str,
        reference: str,
        actor: str,
    ) -> None:
        amount = parse_amount(amount, allow_zero=False)
        check_counter_account(counter_account)
        if bucket is CreditBucket.PREPAID:
            # Repay drawn postpaid credit first: prepaid money and debt never coexist.
            repaid = min(amount, self.postpaid_used)
            split = {"postpaid": repaid, "prepaid": amount - repaid}
        else:
            split = {"included": amount}
        self._credited(
            **self._chained(
                {
                    "amount": amount,
                    "bucket": bucket.value,
                    "split": split,
                    "kind": kind.value,
                    "counter_account": counter_account,
                    "reference": reference,
                    "actor": actor,
                }
            )
        )

    def _chained(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The entry plus its link in the wallet's hash chain (tamper evidence)."""
        return {**entry, "entry_hash": entry_hash(self.entry_hash, self.version + 1, entry)}

    @event(Credited)
    def _credited(
        self,
        amount: Decimal,
        bucket: str,
        split: dict[str, Decimal],
        kind: str,
        counter_account: str,
        reference: str,
        actor: str,
        entry_hash: str,
    ) -> None:
        self.entry_hash = entry_hash
        self.included += split.get("included", ZERO)
        self.prepaid += split.get("prepaid", ZERO)
        self.postpaid_used -= split.get("postpaid", ZERO)

    def record_usage(
        self,
        amount: Decimal,
        *,
        usage_reference: str,
        sender_id: str,
        conversation_id: str,
        category: str,
        units: int,
        unit_price: Decimal,
        actor: str,
    ) -> DebitSplit:
        """Deduct priced usage. Never refused for lack of funds: beyond credit it is overage."""
        self.check_sender_linked(sender_id)
        amount = parse_amount(amount)
        split = self._split(amount)
        self._debited(
            **self._chained(
                {
                    "amount": amount,
                    "split": split.as_dict(),
                    "kind": DebitKind.USAGE.value,
                    "counter_account": accounts.REVENUE_USAGE,
                    "reference": usage_reference,
                    "sender_id": sender_id,
                    "conversation_id": conversation_id,
                    "category": category,
                    "units": units,
                    "unit_price": unit_price,
                    "actor": actor,
                }
            )
        )
        return split

    def send_transfer(self, amount: Decimal, *, transfer_reference: str, actor: str) -> None:
        """Transfers move paid-for money only: never included quota or postpaid credit."""
        amount = parse_amount(amount, allow_zero=False)
        if amount > self.prepaid:
            raise InsufficientFunds(
                f"transfer of {amount} exceeds the prepaid balance {self.prepaid} "
                f"of {self.company_id}"
            )
        split = DebitSplit(ZERO, amount, ZERO, ZERO)
        self._debited(
            **self._chained(
                {
                    "amount": amount,
                    "split": split.as_dict(),
                    "kind": DebitKind.TRANSFER.value,
                    "counter_account": accounts.TRANSFERS_IN_TRANSIT,
                    "reference": transfer_reference,
                    "sender_id": None,
                    "conversation_id": None,
                    "category": None,
                    "units": 0,
                    "unit_price": None,
                    "actor": actor,
                }
            )
        )

    def _split(self, amount: Decimal) -> DebitSplit:
        return split_debit(
            amount,
            included=self.included,
            prepaid=self.prepaid,
            postpaid_used=self.postpaid_used,
            postpaid_limit=self.postpaid_limit,
        )

    @event(Debited)
    def _debited(
        self,
        amount: Decimal,
        split: dict[str, Decimal],
        kind: str,
        counter_account: str,
        reference: str,
        sender_id: str | None,
        conversation_id: str | None,
        category: str | None,
        units: int,
        unit_price: Decimal | None,
        actor: str,
        entry_hash: str,
    ) -> None:
        self.entry_hash = entry_hash
        self.included -= split["included"]
        self.prepaid -= split["prepaid"]
        self.postpaid_used += split["postpaid"] + split["overage"]
        self.overage_total += split["overage"]

    def record_failed_usage(
        self,
        *,
        usage_reference: str,
        sender_id: str,
        conversation_id: str,
        category: str,
        units: int,
        actor: str,
    ) -> None:
        """Failed sends are not billable, but they are counted."""
        self.check_sender_linked(sender_id)
        self._failed_usage_recorded(
            reference=usage_reference,
            sender_id=sender_id,
            conversation_id=conversation_id,
            category=category,
            units=units,
            actor=actor,
        )

    @event("FailedUsageRecorded")
    def _failed_usage_recorded(
        self,
        reference: str,
        sender_id: str,
        conversation_id: str,
        category: str,
        units: int,
        actor: str,
    ) -> None:
        pass


def check_rate_card(rate_card: object) -> dict[str, Decimal]:
    if not isinstance(rate_card, dict):
        raise InvalidArgument("rate_card must be an object mapping category to unit price")
    checked: dict[str, Decimal] = {}
    for category, price in rate_card.items():
        check_key(category, "rate_card category")
        checked[category] = parse_amount(price, field=f"rate_card[{category}]")
    return checked


def check_counter_account(name: str) -> None:
    if name not in accounts.COUNTER_ACCOUNTS:
        raise InvalidArgument(
            f"unknown counter account {name!r}; one of {sorted(accounts.COUNTER_ACCOUNTS)}"
        )
