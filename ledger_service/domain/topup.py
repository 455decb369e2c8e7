"""The TopupRequest aggregate: a company asks for prepaid credit; an operator decides.

Lifecycle::

    pending --approve--> invoiced --mark_paid--> completed
    pending --reject---> rejected
    pending | invoiced --cancel--> cancelled
    pending --flag--> needs_review --release--> pending (invoice) | invoiced (card)
                      needs_review --reject | cancel--> rejected | cancelled

``flag`` is the risk review's (``domain.risk``), in the save that requests the top-up: the
request waits, with the rules it broke, until an operator releases or rejects it.

``approve`` records ``Approved``, ``Invoiced`` (the invoice number is issued on approval) and,
when the invoice carries tax or a fee, ``Priced`` (its lines, see ``invoice.py``; without it
the total is the amount). ``mark_paid`` records ``Paid``, ``ChargesCollected`` (the tax and fee
collected with the total, booked to their accounts) when there are any, and ``Completed``;
the application saves them in the same transaction as the wallet's ``Credited`` event, so a
paid top-up credits exactly once: a second
``mark_paid`` finds the request completed and is refused, and two racing ones collide on the
request's next version number.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger_service.domain.errors import InvalidArgument, InvalidTransition
from ledger_service.domain.ids import check_key
from ledger_service.domain.invoice import InvoiceLines
from ledger_service.domain.money import ZERO, format_amount, parse_amount
from ledger_service.domain.packs import Pack

NOTE_LENGTH_MAX = 500
REASON_LENGTH_MAX = 500


class TopupStatus(StrEnum):
    PENDING = "pending"
    INVOICED = "invoiced"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    NEEDS_REVIEW = "needs_review"


class TopupRequest(Aggregate):
    # Declared so readers (projections, audit) name the events as classes and a type checker
    # sees their fields; fields in the order of the decorated method's parameters, which is the
    # stored payload's order and must not change.
    class Requested(Aggregate.Created):
        company_id: str
        wallet_id: UUID
        amount: Decimal
        currency: str
        note: str
        actor: str

    class PackChosen(Aggregate.Event):
        """The request buys a pack: its bonus is credited as a grant when it is paid."""

        pack: str
        bonus: Decimal

    class Approved(Aggregate.Event):
        actor: str

    class Invoiced(Aggregate.Event):
        invoice_number: str
        actor: str

    class Rejected(Aggregate.Event):
        reason: str
        actor: str

    class Cancelled(Aggregate.Event):
        reason: str
        actor: str

    class Priced(Aggregate.Event):
        """The invoice's lines: ``total`` = ``credit`` + ``tax`` + ``fee`` is charged."""

        credit: Decimal
        tax_percent: Decimal
        tax: Decimal
        fee_percent: Decimal
        fee: Decimal
        total: Decimal

    class Paid(Aggregate.Event):
        payment_reference: str
        actor: str

    class ChargesCollected(Aggregate.Event):
        """The tax and fee paid with the total (postings: tax_payable and revenue:fees)."""

        tax: Decimal
        fee: Decimal

    class Completed(Aggregate.Event):
        actor: str

    class CreditsQuoted(Aggregate.Event):
        """A wallet kept in a unit of account (``domain.credits``): what the money buys, at
        the rate of the request."""

        unit: str
        rate: Decimal
        credits: Decimal

    class Flagged(Aggregate.Event):
        """Held for review: the risk rules the request broke, and how it will be paid."""

        rules: list[str]
        payment_method: str
        actor: str

    class Released(Aggregate.Event):
        """An operator let a flagged request go on."""

        note: str
        actor: str

    @classmethod
    def request(
        cls,
        *,
        company_id: str,
        wallet_id: UUID,
        amount: Decimal,
        currency: str,
        note: str,
        actor: str,
        pack: Pack | None = None,
    ) -> TopupRequest:
        check_key(company_id, "company_id")
        amount = parse_amount(amount, allow_zero=False)
        if pack is not None and (pack.currency, pack.amount) != (currency, amount):
            raise InvalidArgument(
                f"pack {pack.name!r} is {format_amount(pack.amount)} {pack.currency}, "
                f"not {format_amount(amount)} {currency}"
            )
        topup = cls(
            company_id=company_id,
            wallet_id=wallet_id,
            amount=amount,
            currency=currency,
            note=check_text(note, "note", NOTE_LENGTH_MAX),
            actor=actor,
        )
        if pack is not None:
            topup._pack_chosen(pack=pack.name, bonus=pack.bonus)
        return topup

    @event(Requested)
    def __init__(
        self,
        company_id: str,
        wallet_id: UUID,
        amount: Decimal,
        currency: str,
        note: str,
        actor: str,
    ) -> None:
        self.company_id = company_id
        self.wallet_id = wallet_id
        self.amount = amount
        self.currency = currency
        self.note = note
        self.requested_by = actor
        self.status = TopupStatus.PENDING
        self.invoice_number: str | None = None
        self.payment_reference: str | None = None
        self.pack: str | None = None
        self.pack_bonus = ZERO
        self.lines = InvoiceLines(amount, ZERO, ZERO, ZERO, ZERO)
        """What the invoice charges; tax and fee are zero unless ``Priced`` says otherwise."""
        self.credit_unit: str | None = None
        """The wallet's unit when it is not kept in money; ``credits`` of it are credited."""
        self.credit_rate: Decimal | None = None
        self.credits: Decimal | None = None
        self.review_rules: list[str] = []
        """The risk rules that held it for review (empty: never held)."""
        self.payment_method = "invoice"

    def check_status(self, action: str, *allowed: TopupStatus) -> None:
        if self.status not in allowed:
            raise InvalidTransition(f"cannot {action} a top-up request that is {self.status.value}")

    @property
    def credited(self) -> Decimal:
        """What the wallet is credited when paid: the quoted units, else the amount."""
        return self.amount if self.credits is None else self.credits

    def quote_credits(self, *, unit: str, rate: Decimal, credits: Decimal) -> None:
        if self.version != 1 or self.pack is not None:
            raise InvalidArgument("credits are quoted once, on a request without a pack")
        self._credits_quoted(unit=unit, rate=rate, credits=credits)

    @event(CreditsQuoted)
    def _credits_quoted(self, unit: str, rate: Decimal, credits: Decimal) -> None:
        self.credit_unit, self.credit_rate, self.credits = unit, rate, credits

    @event(PackChosen)
    def _pack_chosen(self, pack: str, bonus: Decimal) -> None:
        self.pack, self.pack_bonus = pack, bonus

    @property
    def total(self) -> Decimal:
        """What the payer is charged: the amount credited, plus tax and fee."""
        return self.lines.total

    def approve(
        self, *, invoice_number: str, actor: str, lines: InvoiceLines | None = None
    ) -> None:
        self.check_status("approve", TopupStatus.PENDING)
        if lines is not None and lines.credit != self.amount:
            raise InvalidArgument(f"invoice lines credit {lines.credit}, not {self.amount}")
        self._approved(actor=actor)
        self._invoiced(invoice_number=invoice_number, actor=actor)
        if lines is not None and (lines.tax or lines.fee):
            self._priced(*lines, total=lines.total)

    @event(Approved)
    def _approved(self, actor: str) -> None:
        pass

    @event(Invoiced)
    def _invoiced(self, invoice_number: str, actor: str) -> None:
        self.invoice_number = invoice_number
        self.status = TopupStatus.INVOICED

    @event(Priced)
    def _priced(
        self,
        credit: Decimal,
        tax_percent: Decimal,
        tax: Decimal,
        fee_percent: Decimal,
        fee: Decimal,
        total: Decimal,
    ) -> None:
        self.lines = InvoiceLines(credit, tax_percent, tax, fee_percent, fee)

    def flag(self, *, rules: list[str], payment_method: str, actor: str) -> None:
        self.check_status("hold for review", TopupStatus.PENDING)
        if not rules:
            raise InvalidArgument("a request is held for review by at least one rule")
        self._flagged(rules=list(rules), payment_method=payment_method, actor=actor)

    @event(Flagged)
    def _flagged(self, rules: list[str], payment_method: str, actor: str) -> None:
        self.status = TopupStatus.NEEDS_REVIEW
        self.review_rules = rules
        self.payment_method = payment_method

    def release(self, *, note: str, actor: str) -> None:
        """Back to ``pending``; the caller invoices a card request at once (as its request
        would have) in the same save."""
        self.check_status("release", TopupStatus.NEEDS_REVIEW)
        self._released(note=check_text(note, "note", NOTE_LENGTH_MAX), actor=actor)

    @event(Released)
    def _released(self, note: str, actor: str) -> None:
        self.status = TopupStatus.PENDING

    def reject(self, *, reason: str, actor: str) -> None:
        self.check_status("reject", TopupStatus.PENDING, TopupStatus.NEEDS_REVIEW)
        self._rejected(
            reason=check_text(reason, "reason", REASON_LENGTH_MAX, required=True), actor=actor
        )

    @event(Rejected)
    def _rejected(self, reason: str, actor: str) -> None:
        self.status = TopupStatus.REJECTED

    def cancel(self, *, reason: str, actor: str) -> None:
        self.check_status(
            "cancel", TopupStatus.PENDING, TopupStatus.INVOICED, TopupStatus.NEEDS_REVIEW
        )
        self._cancelled(reason=check_text(reason, "reason", REASON_LENGTH_MAX), actor=actor)

    @event(Cancelled)
    def _cancelled(self, reason: str, actor: str) -> None:
        self.status = TopupStatus.CANCELLED

    def mark_paid(self, *, payment_reference: str, actor: str) -> None:
        """Record payment; the caller credits the wallet in the same save."""
        self.check_status("mark paid", TopupStatus.INVOICED)
        reference = check_text(payment_reference, "payment_reference", 200, required=True)
        self._paid(payment_reference=reference, actor=actor)
        if self.lines.tax or self.lines.fee:
            self._charges_collected(tax=self.lines.tax, fee=self.lines.fee)
        self._completed(actor=actor)

    @event(Paid)
    def _paid(self, payment_reference: str, actor: str) -> None:
        self.payment_reference = payment_reference

    @event(ChargesCollected)
    def _charges_collected(self, tax: Decimal, fee: Decimal) -> None:
        pass

    @event(Completed)
    def _completed(self, actor: str) -> None:
        self.status = TopupStatus.COMPLETED


def check_text(value: object, field: str, length_max: int, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{field} must be a string")
    if len(value) > length_max:
        raise InvalidArgument(f"{field} is longer than {length_max} characters")
    if required and not value.strip():
        raise InvalidArgument(f"{field} must not be empty")
    return value
