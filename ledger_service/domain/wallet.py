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
from datetime import datetime
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
from ledger_service.domain.policies import (
    AUTO_TOPUP,
    BELOW_ZERO,
    BURN_WINDOW_HOURS,
    CREDIT_LIMIT_EXCEEDED,
    LOW_BALANCE,
    LOW_BALANCE_PERCENT_DEFAULT,
    RAPID_BURN,
    SPENDING_CAP_REACHED,
    CycleAnchor,
    check_percent,
    check_spending_caps,
    day_bounds,
    hour_of,
)


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
    EXPIRY = "expiry"
    """Unused included quota expiring at a cycle boundary."""


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

        def apply(self, aggregate: Any) -> None:
            # Called by the library right after ``_debited`` with the event in hand: daily caps
            # and the burn window need the event's own time, and must follow from the event
            # on replay exactly as they did live.
            if self.kind == DebitKind.USAGE and self.category is not None:
                aggregate._track_spending(self.timestamp, self.category, self.units, self.amount)

    # Version 2 added policies (cycles, alerts, caps, auto top-up): older snapshots are
    # upcast with the defaults below; events of version 1 wallets need no upcasting.
    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        anchor = CycleAnchor()
        state["cycle_anchor"] = anchor.as_dict()
        state["cycle_start"] = anchor.cycle_start_at(state["_created_on"])
        state["cycle_funded"] = max(state["included"] + state["prepaid"], ZERO)
        state.update(_default_policies())

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
        anchor = CycleAnchor()
        self.cycle_anchor = anchor.as_dict()
        self.cycle_start = anchor.cycle_start_at(self.created_on)
        self.cycle_funded = ZERO
        self.low_balance_threshold: Decimal | None = None
        self.low_balance_percent = LOW_BALANCE_PERCENT_DEFAULT
        self.burn_limit_24h: Decimal | None = None
        self.auto_topup: dict[str, Any] = _default_auto_topup()
        self.spending_caps: dict[str, dict[str, Any]] = {}
        self.triggered: list[str] = []
        """Alerts (and the auto top-up trigger) that fired and have not re-armed yet."""
        self.blocked: dict[str, str] = {}
        """Category -> the day its spending cap was reached (blocked for that day)."""
        self.spend_day: dict[str, Any] = {"day": "", "ends_at": None, "categories": {}}
        self.burn_hours: dict[str, Decimal] = {}

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
        self._credit_entry(
            amount,
            bucket=bucket,
            kind=kind,
            counter_account=counter_account,
            reference=reference,
            actor=actor,
        )
        self._evaluate_triggers()

    def _credit_entry(
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
        self._check_entry(amount, split, sign=1)
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

    def _check_entry(self, amount: Decimal, split: dict[str, Decimal], *, sign: int) -> None:
        """Invariants of every money event, checked before it is triggered (so a broken one
        never reaches the aggregate or the store): the split adds up to the amount, no part
        of it is negative, and no bucket goes negative. A failure here is a bug, not input."""
        assert sum(split.values(), ZERO) == amount, f"split {split} does not add up to {amount}"
        assert all(part >= 0 for part in split.values()), f"negative part in split {split}"
        postpaid = split.get("postpaid", ZERO) + (split.get("overage", ZERO) if sign < 0 else ZERO)
        after = (
            self.included + sign * split.get("included", ZERO),
            self.prepaid + sign * split.get("prepaid", ZERO),
            self.postpaid_used - sign * postpaid,
        )
        assert all(bucket >= 0 for bucket in after), f"{split} would leave buckets at {after}"

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
        self.cycle_funded += amount

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
        self._check_entry(amount, split.as_dict(), sign=-1)
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
        self._check_spending_cap(category)
        self._evaluate_triggers()
        return split

    def send_transfer(self, amount: Decimal, *, transfer_reference: str, actor: str) -> None:
        """Transfers move paid-for money only: never included quota or postpaid credit."""
        amount = parse_amount(amount, allow_zero=False)
        if amount > self.prepaid:
            raise InsufficientFunds(
                f"transfer of {amount} exceeds the prepaid balance {self.prepaid} "
                f"of {self.company_id}"
            )
        self._debit_entry(
            amount,
            DebitSplit(ZERO, amount, ZERO, ZERO),
            kind=DebitKind.TRANSFER,
            counter_account=accounts.TRANSFERS_IN_TRANSIT,
            reference=transfer_reference,
            actor=actor,
        )
        self._evaluate_triggers()

    def _debit_entry(
        self,
        amount: Decimal,
        split: DebitSplit,
        *,
        kind: DebitKind,
        counter_account: str,
        reference: str,
        actor: str,
    ) -> None:
        """A debit that is not usage (transfer out, quota expiry): no sender, no pricing."""
        self._check_entry(amount, split.as_dict(), sign=-1)
        self._debited(
            **self._chained(
                {
                    "amount": amount,
                    "split": split.as_dict(),
                    "kind": kind.value,
                    "counter_account": counter_account,
                    "reference": reference,
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

    # -- policies: alerts, caps, auto top-up, cycles ----------------------------------------

    def configure_alerts(
        self,
        *,
        low_balance_threshold: Decimal | None,
        low_balance_percent: Decimal,
        burn_limit_24h: Decimal | None,
        actor: str,
    ) -> None:
        """An absolute low-balance threshold wins over the percentage of the cycle's funding."""
        self._alert_settings_changed(
            low_balance_threshold=None
            if low_balance_threshold is None
            else parse_amount(low_balance_threshold, field="low_balance_threshold"),
            low_balance_percent=check_percent(low_balance_percent, "low_balance_percent"),
            burn_limit_24h=None
            if burn_limit_24h is None
            else parse_amount(burn_limit_24h, field="burn_limit_24h", allow_zero=False),
            actor=actor,
        )
        self._evaluate_triggers()

    @event("AlertSettingsChanged")
    def _alert_settings_changed(
        self,
        low_balance_threshold: Decimal | None,
        low_balance_percent: Decimal,
        burn_limit_24h: Decimal | None,
        actor: str,
    ) -> None:
        self.low_balance_threshold = low_balance_threshold
        self.low_balance_percent = low_balance_percent
        self.burn_limit_24h = burn_limit_24h

    def configure_auto_topup(
        self,
        *,
        enabled: bool,
        trigger_balance: Decimal,
        amount: Decimal,
        auto_approve: bool,
        actor: str,
    ) -> None:
        """When enabled, one top-up request of ``amount`` per crossing below the trigger."""
        trigger = parse_amount(trigger_balance, field="trigger_balance", allow_negative=True)
        topup_amount = parse_amount(amount, field="amount", allow_zero=not enabled)
        self._auto_topup_changed(
            enabled=bool(enabled),
            trigger_balance=trigger,
            amount=topup_amount,
            auto_approve=bool(auto_approve),
            actor=actor,
        )
        self._evaluate_triggers()

    @event("AutoTopupChanged")
    def _auto_topup_changed(
        self,
        enabled: bool,
        trigger_balance: Decimal,
        amount: Decimal,
        auto_approve: bool,
        actor: str,
    ) -> None:
        self.auto_topup = {
            "enabled": enabled,
            "trigger_balance": trigger_balance,
            "amount": amount,
            "auto_approve": auto_approve,
        }

    def change_spending_caps(self, caps: dict[str, dict[str, Any]], *, actor: str) -> None:
        self._spending_caps_changed(caps=check_spending_caps(caps), actor=actor)

    @event("SpendingCapsChanged")
    def _spending_caps_changed(self, caps: dict[str, dict[str, Any]], actor: str) -> None:
        self.spending_caps = {category: dict(cap) for category, cap in caps.items()}

    def change_cycle_anchor(self, anchor: CycleAnchor, *, actor: str) -> None:
        """The current cycle keeps its start; the next one starts at the new anchor."""
        self._cycle_anchor_changed(
            anchor=anchor.as_dict(),
            next_cycle_at=anchor.next_boundary(self.cycle_start),
            actor=actor,
        )

    @event("CycleAnchorChanged")
    def _cycle_anchor_changed(
        self, anchor: dict[str, Any], next_cycle_at: datetime, actor: str
    ) -> None:
        self.cycle_anchor = dict(anchor)

    @property
    def anchor(self) -> CycleAnchor:
        return CycleAnchor.from_dict(self.cycle_anchor)

    @property
    def next_cycle_at(self) -> datetime:
        return self.anchor.next_boundary(self.cycle_start)

    def start_due_cycles(self, now: datetime, *, actor: str) -> int:
        """Start every cycle whose boundary passed by ``now``, oldest first: unused included
        quota expires and the new quota is granted. A boundary is never started twice: only
        boundaries after ``cycle_start`` are due. Returns how many cycles were started."""
        anchor = self.anchor
        due = anchor.boundaries_due(self.cycle_start, now)
        for boundary in due:
            stamp = boundary.isoformat()
            if self.included > 0:
                self._expire_included(reference=f"included-quota:expired:{stamp}", actor=actor)
            if self.included_quota > 0:
                self._credit_entry(
                    self.included_quota,
                    bucket=CreditBucket.INCLUDED,
                    kind=CreditKind.GRANT,
                    counter_account=accounts.PROMOTIONS,
                    reference=f"included-quota:{stamp}",
                    actor=actor,
                )
            self._cycle_started(
                cycle_start=boundary,
                next_cycle_at=anchor.next_boundary(boundary),
                opening_funded=max(self.included + self.prepaid, ZERO),
                actor=actor,
            )
        if due:
            self._evaluate_triggers()
        return len(due)

    def _expire_included(self, *, reference: str, actor: str) -> None:
        self._debit_entry(
            self.included,
            DebitSplit(self.included, ZERO, ZERO, ZERO),
            kind=DebitKind.EXPIRY,
            counter_account=accounts.PROMOTIONS,
            reference=reference,
            actor=actor,
        )

    @event("CycleStarted")
    def _cycle_started(
        self, cycle_start: datetime, next_cycle_at: datetime, opening_funded: Decimal, actor: str
    ) -> None:
        self.cycle_start = cycle_start
        self.cycle_funded = opening_funded

    # -- triggers: fire once per crossing, re-arm after recovery ----------------------------

    @property
    def low_balance_line(self) -> Decimal | None:
        """The balance below which ``low_balance_warning`` fires (None: never)."""
        if self.low_balance_threshold is not None:
            return self.low_balance_threshold
        line = canonical(self.cycle_funded * self.low_balance_percent / 100)
        return line if line > 0 else None

    def burn_24h(self, now_hour: int) -> Decimal:
        oldest = now_hour - BURN_WINDOW_HOURS
        return sum((v for h, v in self.burn_hours.items() if int(h) > oldest), ZERO)

    def _evaluate_triggers(self) -> None:
        """Raise what newly holds and re-arm what cleared, as events (replay re-decides
        nothing: it only re-applies these events)."""
        balance = self.included + self.prepaid - self.postpaid_used
        available = balance + self.postpaid_limit
        low_line = self.low_balance_line
        auto = self.auto_topup
        burn_limit = self.burn_limit_24h
        burn = ZERO
        if burn_limit is not None and self.burn_hours:
            burn = self.burn_24h(max(int(h) for h in self.burn_hours))
        conditions = (
            (LOW_BALANCE, low_line is not None and balance < low_line, low_line),
            (BELOW_ZERO, balance < 0, ZERO),
            (CREDIT_LIMIT_EXCEEDED, available < 0, ZERO),
            (RAPID_BURN, burn_limit is not None and burn > burn_limit, burn_limit),
            (AUTO_TOPUP, auto["enabled"] and balance < auto["trigger_balance"], None),
        )
        rearmed = [k for k, holds, _ in conditions if not holds and k in self.triggered]
        if rearmed:
            self._triggers_rearmed(
                company_id=self.company_id,
                triggers=rearmed,
                balance=canonical(balance),
                available=canonical(available),
            )
        for kind, holds, line in conditions:
            if not holds or kind in self.triggered:
                continue
            if kind == AUTO_TOPUP:
                self._auto_topup_triggered(
                    company_id=self.company_id,
                    amount=auto["amount"],
                    trigger_balance=auto["trigger_balance"],
                    auto_approve=auto["auto_approve"],
                    balance=canonical(balance),
                )
            else:
                self._alert_raised(
                    company_id=self.company_id,
                    alert=kind,
                    balance=canonical(balance),
                    available=canonical(available),
                    threshold=line,
                    category=None,
                    day=None,
                    measured=canonical(burn) if kind == RAPID_BURN else None,
                )

    def _check_spending_cap(self, category: str) -> None:
        cap = self.spending_caps.get(category)
        day = self.spend_day["day"]
        if cap is None or self.blocked.get(category) == day:
            return
        units, amount = self.spend_day["categories"].get(category, (0, ZERO))
        reached = (cap["units"] is not None and units >= cap["units"]) or (
            cap["amount"] is not None and amount >= cap["amount"]
        )
        if reached:
            balance = canonical(self.balance)
            self._alert_raised(
                company_id=self.company_id,
                alert=SPENDING_CAP_REACHED,
                balance=balance,
                available=canonical(balance + self.postpaid_limit),
                threshold=None,
                category=category,
                day=day,
                measured=canonical(amount),
            )

    @event("AlertRaised")
    def _alert_raised(
        self,
        company_id: str,
        alert: str,
        balance: Decimal,
        available: Decimal,
        threshold: Decimal | None,
        category: str | None,
        day: str | None,
        measured: Decimal | None,
    ) -> None:
        if alert == SPENDING_CAP_REACHED and category is not None and day is not None:
            self.blocked[category] = day
        else:
            self.triggered = sorted({*self.triggered, alert})

    @event("TriggersRearmed")
    def _triggers_rearmed(
        self, company_id: str, triggers: list[str], balance: Decimal, available: Decimal
    ) -> None:
        self.triggered = [t for t in self.triggered if t not in triggers]

    @event("AutoTopupTriggered")
    def _auto_topup_triggered(
        self,
        company_id: str,
        amount: Decimal,
        trigger_balance: Decimal,
        auto_approve: bool,
        balance: Decimal,
    ) -> None:
        self.triggered = sorted({*self.triggered, AUTO_TOPUP})

    def _track_spending(self, at: datetime, category: str, units: int, amount: Decimal) -> None:
        """Today's usage per category (caps) and usage per hour (burn window)."""
        day = self.spend_day
        if day["ends_at"] is None or at >= day["ends_at"]:
            day_iso, ends_at = day_bounds(at, self.anchor.zone)
            day = self.spend_day = {"day": day_iso, "ends_at": ends_at, "categories": {}}
            self.blocked = {c: d for c, d in self.blocked.items() if d == day_iso}
        counts = day["categories"].get(category)
        if counts is None:
            day["categories"][category] = [units, amount]
        else:
            counts[0] += units
            counts[1] += amount
        hour = hour_of(at)
        key = str(hour)
        self.burn_hours[key] = self.burn_hours.get(key, ZERO) + amount
        if len(self.burn_hours) > BURN_WINDOW_HOURS:
            oldest = hour - BURN_WINDOW_HOURS
            self.burn_hours = {h: v for h, v in self.burn_hours.items() if int(h) > oldest}


def _default_auto_topup() -> dict[str, Any]:
    return {"enabled": False, "trigger_balance": ZERO, "amount": ZERO, "auto_approve": False}


def _default_policies() -> dict[str, Any]:
    """Policy state of a wallet that never configured any (also upcasts v1 snapshots)."""
    return {
        "low_balance_threshold": None,
        "low_balance_percent": LOW_BALANCE_PERCENT_DEFAULT,
        "burn_limit_24h": None,
        "auto_topup": _default_auto_topup(),
        "spending_caps": {},
        "triggered": [],
        "blocked": {},
        "spend_day": {"day": "", "ends_at": None, "categories": {}},
        "burn_hours": {},
    }


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
