"""Stateful property test: random sequences of ledger commands keep the ledger's invariants.

After every step: each wallet's balance equals the sum of its postings; the trial balance is
zero; every top-up credited at most once (exactly once when completed); every usage refund gives
back its charge in full, at most once; every grant holds between zero and what was granted, a
closed grant holds nothing, and a grant is closed at most once and never expires before its
``expires_at``. On every usage step the split respects bucket order (included, grants in their
drain order, prepaid) and never draws postpaid credit beyond the limit (the rest is recorded
overage). Time moves on only when the machine says so (``pass_time``).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from ledger_service.domain.books import trial_balance
from ledger_service.domain.errors import LedgerError
from ledger_service.domain.grants import Grant
from ledger_service.domain.holds import hold_id as hold_id_of
from ledger_service.domain.usage import Usage
from ledger_service.domain.wallet import Wallet
from tests.fakes import InMemoryLedger

COMPANIES = ["acme", "globex", "initech"]
SENDERS = {c: [f"{c}-w1", f"{c}-w2"] for c in COMPANIES}
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(300), places=2)


def drain_order(grant: Grant) -> tuple[int, datetime, datetime]:
    """Written out here, not taken from the domain: priority, soonest expiry, oldest."""
    never = datetime.max.replace(tzinfo=UTC)
    return (grant.priority, grant.expires_at or never, grant.granted_at)


class LedgerMachine(RuleBasedStateMachine):
    topups = Bundle("topups")
    paid = Bundle("paid")
    adjustments = Bundle("adjustments")
    grants = Bundle("grants")
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.ledger = InMemoryLedger()
        self.keys = 0
        self.usage_ids: list[str] = []
        self.charged: dict[str, tuple[str, Decimal]] = {}
        """Usage event id -> (company, the amount it was charged: 0 when failed)."""
        self.refunded: set[str] = set()
        self.now = datetime.now(UTC)
        """The machine's clock: grants expire, and cycles start, when ``pass_time`` says."""
        self.grant_count = 0
        self.hold_count = 0

    def key(self) -> str:
        self.keys += 1
        return f"k{self.keys}"

    @initialize(
        limits=st.lists(st.integers(0, 200), min_size=3, max_size=3),
        quotas=st.lists(st.integers(0, 300), min_size=3, max_size=3),
    )
    def open_wallets(self, limits: list[int], quotas: list[int]) -> None:
        for company, limit, quota in zip(COMPANIES, limits, quotas, strict=True):
            self.ledger.open_wallet(
                company_id=company,
                currency="USD",
                postpaid_limit=str(limit),
                included_quota=str(quota),
                rate_card={"marketing": "1.5", "utility": "0.25"},
                actor="op",
                idempotency_key=self.key(),
            )
            for sender in SENDERS[company]:
                self.ledger.link_sender(
                    company_id=company, waba_id=sender, actor="op", idempotency_key=self.key()
                )

    @rule(target=topups, company=st.sampled_from(COMPANIES), amount=amounts)
    def request_and_approve_topup(self, company: str, amount: Decimal) -> UUID:
        result = self.ledger.request_topup(
            company_id=company,
            amount=str(amount),
            currency="USD",
            actor="tenant",
            idempotency_key=self.key(),
        )
        topup_id = UUID(result["topup_id"])
        self.ledger.approve_topup(topup_id=topup_id, actor="op", idempotency_key=self.key())
        return topup_id

    @rule(target=paid, topup_id=consumes(topups), tries=st.integers(1, 3))
    def mark_paid(self, topup_id: UUID, tries: int) -> UUID:
        key = self.key()
        for _ in range(tries):  # retries with the same key are answered, not re-applied
            self.ledger.mark_topup_paid(
                topup_id=topup_id, payment_reference="bank", actor="op", idempotency_key=key
            )
        return topup_id

    @rule(topup_id=paid)
    def mark_paid_again_is_refused(self, topup_id: UUID) -> None:
        try:
            self.ledger.mark_topup_paid(
                topup_id=topup_id, payment_reference="bank2", actor="op", idempotency_key=self.key()
            )
        except LedgerError as exc:
            assert exc.code == "INVALID_TRANSITION"
        else:
            raise AssertionError("a completed top-up was paid twice")

    @rule(
        company=st.sampled_from(COMPANIES),
        sender=st.integers(0, 1),
        category=st.sampled_from(["marketing", "utility"]),
        units=st.integers(1, 80),
        status=st.sampled_from(["delivered", "delivered", "failed"]),
    )
    def send_message(
        self, company: str, sender: int, category: str, units: int, status: str
    ) -> None:
        before = self.ledger.get_wallet(company)
        event_id = f"m{len(self.usage_ids)}"
        self.usage_ids.append(event_id)
        self.ledger.apply_usage(
            Usage(
                source="//test",
                event_id=event_id,
                company_id=company,
                waba_id=SENDERS[company][sender],
                conversation_id="c",
                category=category,
                status=status,
                units=units,
            )
        )
        after = self.ledger.get_wallet(company)
        self.charged[event_id] = (company, before.balance - after.balance)
        if status == "failed":
            assert after.balance == before.balance
            return
        self.check_bucket_order(before, after, before.price_of(category, units))

    @staticmethod
    def check_bucket_order(before: Wallet, after: Wallet, amount: Decimal) -> None:
        from_included = before.included - after.included
        from_grants = before.granted - after.granted
        from_prepaid = before.prepaid - after.prepaid
        drawn = after.postpaid_used - before.postpaid_used
        overage = after.overage_total - before.overage_total
        assert from_included == min(amount, before.included)
        assert from_grants == min(amount - from_included, before.granted)
        rest = from_grants
        for grant in sorted(before.grants.values(), key=drain_order):
            taken = grant.remaining - after.grants[grant.grant_id].remaining
            assert taken == min(rest, grant.remaining)  # each grant in drain order
            rest -= taken
        assert from_prepaid == min(amount - from_included - from_grants, before.prepaid)
        headroom = max(before.postpaid_limit - before.postpaid_used, Decimal(0))
        assert drawn - overage == min(amount - from_included - from_grants - from_prepaid, headroom)
        assert from_included + from_grants + from_prepaid + drawn == amount
        assert after.balance == before.balance - amount

    @rule(data=st.data())
    def redeliver_a_usage_event(self, data: st.DataObject) -> None:
        if not self.usage_ids:
            return
        event_id = data.draw(st.sampled_from(self.usage_ids))
        outcome = self.ledger.apply_usage(
            Usage(
                source="//test",
                event_id=event_id,
                company_id="acme",
                waba_id="acme-w1",
                conversation_id="c",
                category="marketing",
                status="delivered",
                units=1,
            )
        )
        assert outcome.value == "duplicate"

    @rule(data=st.data(), by_consumer=st.booleans(), tries=st.integers(1, 2))
    def refund_usage(self, data: st.DataObject, by_consumer: bool, tries: int) -> None:
        """An operator's refund or a late ``failed`` report, perhaps repeated: the charge comes
        back once, in full; never for usage that charged nothing."""
        if not self.usage_ids:
            return
        event_id = data.draw(st.sampled_from(self.usage_ids))
        company, charge = self.charged[event_id]
        before = self.ledger.get_wallet(company).balance
        events_before = len(self.events())
        for _ in range(tries):
            try:
                if by_consumer:
                    self.ledger.apply_usage(
                        Usage("//test", event_id, company, SENDERS[company][0], "c", "marketing",
                              "failed", 1)
                    )  # fmt: skip
                else:
                    self.ledger.refund_usage(
                        company_id=company,
                        usage_source="//test",
                        usage_id=event_id,
                        reason="undelivered",
                        actor="op",
                        idempotency_key=self.key(),
                    )
            except LedgerError as exc:
                assert exc.code in {"USAGE_ALREADY_REFUNDED", "USAGE_NOT_REFUNDABLE"}, exc
        given_back = Decimal(0) if event_id in self.refunded or charge == 0 else charge
        # What went back to a grant that has closed since is taken again at once.
        retaken = sum(
            (
                e.amount
                for e in self.events()[events_before:]
                if isinstance(e, Wallet.Debited) and e.kind == "expiry"
            ),
            Decimal(0),
        )
        assert self.ledger.get_wallet(company).balance - before == given_back - retaken
        if given_back:
            self.refunded.add(event_id)

    @rule(
        source=st.sampled_from(COMPANIES),
        receiver=st.sampled_from(COMPANIES),
        amount=amounts,
        rate=st.sampled_from(["0", "0.1", "0.333"]),
    )
    def transfer(self, source: str, receiver: str, amount: Decimal, rate: str) -> None:
        if source == receiver:
            return
        prepaid = self.ledger.get_wallet(source).prepaid
        try:
            self.ledger.transfer(
                from_company_id=source,
                to_company_id=receiver,
                amount=str(amount),
                commission_rate=rate,
                actor="op",
                idempotency_key=self.key(),
            )
        except LedgerError as exc:
            assert exc.code == "INSUFFICIENT_FUNDS"
            assert amount > prepaid

    @rule(
        target=adjustments,
        company=st.sampled_from(COMPANIES),
        direction=st.sampled_from(["credit", "debit"]),
        bucket=st.sampled_from(["prepaid", "postpaid_used"]),
        amount=amounts,
    )
    def request_adjustment(
        self, company: str, direction: str, bucket: str, amount: Decimal
    ) -> tuple[str, str]:
        try:
            pending = self.ledger.request_adjustment(
                company_id=company,
                direction=direction,
                bucket=bucket,
                amount=amount,
                reason="correction",
                actor="ops-a",
                idempotency_key=self.key(),
            )
        except LedgerError as exc:  # refused as it would break a bucket: nothing written
            assert exc.code in {"INSUFFICIENT_FUNDS", "INVALID_ARGUMENT"}
            return company, ""
        assert pending["status"] == "pending_approval"  # the default threshold is 0
        return company, pending["adjustment_id"]

    @rule(adjustment=consumes(adjustments), tries=st.integers(1, 3))
    def approve_adjustment(self, adjustment: tuple[str, str], tries: int) -> None:
        company, adjustment_id = adjustment
        if not adjustment_id:
            return
        for attempt in range(tries):  # approvals after the first are invalid transitions
            try:
                self.ledger.approve_adjustment(
                    company_id=company,
                    adjustment_id=UUID(adjustment_id),
                    actor=f"ops-{attempt + 2}",
                    idempotency_key=self.key(),
                )
            except LedgerError as exc:  # the wallet moved since the request, or done already
                assert exc.code in {"INSUFFICIENT_FUNDS", "INVALID_ARGUMENT", "INVALID_TRANSITION"}

    @rule(
        target=grants,
        company=st.sampled_from(COMPANIES),
        amount=amounts,
        priority=st.sampled_from([1, 10, 10, 50]),
        expires_in=st.one_of(st.none(), st.integers(1, 60)),
    )
    def issue_grant(
        self, company: str, amount: Decimal, priority: int, expires_in: int | None
    ) -> tuple[str, str]:
        self.grant_count += 1
        before = self.ledger.get_wallet(company).balance
        expires_at = None if expires_in is None else self.now + timedelta(days=expires_in)
        grant = self.ledger.issue_grant(
            company_id=company,
            amount=amount,
            reason="promo",
            reference=f"g{self.grant_count}",
            priority=priority,
            expires_at=expires_at,
            actor="op",
            idempotency_key=self.key(),
        )
        assert self.ledger.get_wallet(company).balance - before == amount
        return company, grant["grant_id"]

    @rule(grant=grants)
    def void_grant(self, grant: tuple[str, str]) -> None:
        company, grant_id = grant
        wallet = self.ledger.get_wallet(company)
        remaining = wallet.grants[grant_id].remaining
        try:
            voided = self.ledger.void_grant(
                company_id=company, grant_id=UUID(grant_id), actor="op", idempotency_key=self.key()
            )
        except LedgerError as exc:
            assert exc.code == "GRANT_CLOSED"
            assert not wallet.grants[grant_id].active
            return
        assert voided["status"] == "voided"
        assert self.ledger.get_wallet(company).balance == wallet.balance - remaining

    @rule(
        target=holds,
        company=st.sampled_from(COMPANIES),
        units=st.integers(1, 60),
        ttl=st.sampled_from([60, 3600]),
    )
    def place_hold(self, company: str, units: int, ttl: int) -> tuple[str, str]:
        """A hold is a request: refused (nothing written) when available does not cover it,
        so holds alone never take available below zero."""
        self.hold_count += 1
        reference = f"h{self.hold_count}"
        wallet = self.ledger.get_wallet(company)
        price = wallet.price_of("marketing", units)
        try:
            self.ledger.place_hold(
                company_id=company, waba_id=SENDERS[company][0], category="marketing",
                units=units, reference=reference, ttl_s=ttl, actor="sender",
                idempotency_key=self.key(),
            )  # fmt: skip
        except LedgerError as exc:
            assert exc.code == "INSUFFICIENT_AVAILABLE_BALANCE"
            assert wallet.available < price
            assert self.ledger.get_wallet(company).version == wallet.version
            return company, ""
        after = self.ledger.get_wallet(company)
        assert after.held == wallet.held + price
        assert after.available >= 0
        return company, reference

    @rule(held=consumes(holds), units=st.integers(1, 80), failed=st.booleans())
    def send_held_message(self, held: tuple[str, str], units: int, failed: bool) -> None:
        """The usage event of a held message settles (or, failed, releases) its hold and is
        charged as any usage; if the hold expired or was released, it is charged all the same."""
        company, reference = held
        if not reference:
            return
        before = self.ledger.get_wallet(company)
        self.usage_ids.append(reference)
        status = "failed" if failed else "delivered"
        self.ledger.apply_usage(
            Usage("//test", reference, company, SENDERS[company][0], "c", "marketing", status,
                  units)
        )  # fmt: skip
        after = self.ledger.get_wallet(company)
        self.charged[reference] = (company, before.balance - after.balance)
        assert reference not in after.holds
        released = before.holds[reference].amount if reference in before.holds else Decimal(0)
        assert after.held == before.held - released
        if not failed:
            assert before.balance - after.balance == before.price_of("marketing", units)

    @rule(held=holds)
    def release_hold(self, held: tuple[str, str]) -> None:
        company, reference = held
        if not reference:
            return
        wallet = self.ledger.get_wallet(company)
        hold_id = hold_id_of(wallet.id, reference)
        try:
            self.ledger.release_hold(
                company_id=company, hold_id=hold_id, actor="sender", idempotency_key=self.key()
            )
        except LedgerError as exc:
            assert exc.code == "HOLD_NOT_FOUND"
            assert reference not in wallet.holds
            return
        assert self.ledger.get_wallet(company).held == wallet.held - wallet.holds[reference].amount

    @rule(days=st.integers(1, 45), runs=st.integers(1, 2))
    def pass_time(self, days: int, runs: int) -> None:
        """Time passes and the scheduler runs (perhaps twice: the second finds nothing)."""
        self.now += timedelta(days=days)
        ids = [self.ledger.get_wallet(c).id for c in COMPANIES]
        for run in range(runs):
            changed = self.ledger.start_due_cycles(ids, now=self.now, actor="scheduler")
            assert run == 0 or changed == 0
        for company in COMPANIES:
            wallet = self.ledger.get_wallet(company)
            for grant in wallet.grants.values():
                assert not grant.expired_by(self.now), "a due grant was left active"
            assert not any(hold.expired_by(self.now) for hold in wallet.holds.values())

    @rule(company=st.sampled_from(COMPANIES), limit=st.integers(0, 200))
    def change_limit(self, company: str, limit: int) -> None:
        self.ledger.configure_wallet(
            company_id=company, postpaid_limit=str(limit), actor="op", idempotency_key=self.key()
        )

    def events(self) -> list[object]:
        return [
            self.ledger.mapper.to_domain_event(n)
            for n in self.ledger.recorder.select_notifications(start=1, limit=10**9)
        ]

    @invariant()
    def books_balance(self) -> None:
        totals = trial_balance(self.events())  # type: ignore[arg-type]
        assert sum(totals.values(), Decimal(0)) == 0
        for company in COMPANIES:
            wallet = self.ledger.get_wallet(company)
            assert totals.get(wallet.account, Decimal(0)) == wallet.balance
            assert wallet.included >= 0
            assert wallet.prepaid >= 0
            assert wallet.postpaid_used >= 0
            assert not (wallet.prepaid > 0 and wallet.postpaid_used > 0)
            grants = wallet.grants.values()
            assert wallet.granted == sum((g.remaining for g in grants), Decimal(0))
            assert all(Decimal(0) <= g.remaining <= g.amount for g in grants)
            assert all(g.remaining == 0 for g in grants if not g.active)
            assert wallet.held == sum((h.amount for h in wallet.holds.values()), Decimal(0))

    @invariant()
    def holds_close_at_most_once(self) -> None:
        closed = [
            (e.originator_id, e.hold_id) for e in self.events() if isinstance(e, Wallet.HoldClosed)
        ]
        assert len(set(closed)) == len(closed)

    @invariant()
    def grants_close_once_and_never_early(self) -> None:
        closed = [e for e in self.events() if isinstance(e, Wallet.GrantClosed)]
        assert len({(e.originator_id, e.grant_id) for e in closed}) == len(closed)
        for e in closed:
            if e.status == "expired":
                grant = self.ledger.get_wallet_by_id(e.originator_id).grants[e.grant_id]
                assert grant.expires_at is not None
                assert grant.expires_at <= self.now

    @invariant()
    def topups_credit_at_most_once(self) -> None:
        credits = Counter(
            e.reference.split(":")[1]
            for e in self.events()
            if isinstance(e, Wallet.Credited) and e.kind == "topup"
        )
        assert all(count == 1 for count in credits.values())

    @invariant()
    def adjustments_move_money_at_most_once(self) -> None:
        entries = Counter(
            e.reference
            for e in self.events()
            if isinstance(e, Wallet.Credited | Wallet.Debited) and e.kind == "adjustment"
        )
        assert all(count == 1 for count in entries.values())

    @invariant()
    def refunds_give_back_a_charge_at_most_once(self) -> None:
        charges = {
            e.reference: e.amount
            for e in self.events()
            if isinstance(e, Wallet.Debited) and e.kind == "usage"
        }
        refunds = Counter(
            (e.reference.removeprefix("refund:"), e.amount)
            for e in self.events()
            if isinstance(e, Wallet.Credited) and e.kind == "refund"
        )
        assert all(count == 1 for count in refunds.values())
        assert all(charges[reference] == amount for reference, amount in refunds)

    def teardown(self) -> None:
        self.ledger.close()


LedgerMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerMachine = LedgerMachine.TestCase
