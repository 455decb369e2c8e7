"""Transfers of prepaid money between two companies' wallets, less a commission: made by an
operator (``TransferMoney``), or by a tenant from its own wallet as a gift (``SendTransfer``),
held to the sender's daily transfer limit, its commission paid to the agency's wallet when the
service names one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar, NotRequired, TypedDict

from ledger_service.domain import accounts
from ledger_service.domain.errors import CurrencyMismatch, InvalidArgument
from ledger_service.domain.ids import check_key
from ledger_service.domain.money import ZERO, format_amount, parse_amount
from ledger_service.domain.topup import check_text
from ledger_service.domain.transfer import (
    GIFT_MESSAGE_LENGTH_MAX,
    Transfer,
    check_commission_rate,
    commission_of,
)
from ledger_service.domain.wallet import CreditBucket, CreditKind, Wallet
from ledger_service.service.runner import Command, Decision
from ledger_service.service.values import set_field

if TYPE_CHECKING:
    from eventsourcing.domain import Aggregate

    from ledger_service.service.ledger import LedgerApplication

COMMISSION_ACCOUNTS = (accounts.COMMISSIONS, accounts.PROMOTIONS, accounts.REVENUE_USAGE)


class TransferMade(TypedDict):
    transfer_id: str
    amount: str
    commission: str
    net_amount: str
    position: NotRequired[int | None]


@dataclass(frozen=True, slots=True)
class TransferTerms:
    """What one transfer moves and where its commission goes."""

    amount: Decimal
    commission_rate: Decimal
    commission_account: str
    note: str = ""
    gift_type: str | None = None
    message: str = ""
    agency_company_id: str | None = None
    """The company whose wallet is paid the commission (None: it stays in the account)."""


@dataclass(frozen=True, kw_only=True)
class TransferMoney(Command[TransferMade]):
    """Debit the sender, credit the receiver net of commission, book the commission."""

    name: ClassVar[str] = "transfer"
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"from_company_id"})

    from_company_id: str
    to_company_id: str
    amount: Decimal
    commission_rate: Decimal = ZERO
    commission_account: str = accounts.COMMISSIONS
    note: str = ""

    def __post_init__(self) -> None:
        if self.from_company_id == self.to_company_id:
            raise InvalidArgument("a transfer needs two different companies")
        set_field(self, "amount", parse_amount(self.amount, allow_zero=False))
        set_field(self, "commission_rate", check_commission_rate(self.commission_rate))

    def scope(self, ledger: LedgerApplication) -> str:
        return self.from_company_id

    def decide(self, ledger: LedgerApplication) -> Decision[TransferMade]:
        terms = TransferTerms(
            amount=self.amount,
            commission_rate=self.commission_rate,
            commission_account=check_commission_account(self.commission_account),
            note=check_text(self.note, "note", 500),
        )
        source = ledger.get_wallet(self.from_company_id)
        return make_transfer(ledger, source, self.to_company_id, terms, actor=self.actor)


@dataclass(frozen=True, kw_only=True)
class SendTransfer(Command[TransferMade]):
    """A tenant's transfer from its own wallet to another company's, with an optional gift
    type and message: at the service's commission rate, within the sender's daily limit."""

    name: ClassVar[str] = "send_transfer"
    fingerprint_omits: ClassVar[frozenset[str]] = frozenset({"from_company_id"})

    from_company_id: str
    to_company_id: str
    amount: Decimal
    gift_type: str | None = None
    message: str = ""

    def __post_init__(self) -> None:
        check_key(self.to_company_id, "to_company_id")
        if self.from_company_id == self.to_company_id:
            raise InvalidArgument("a transfer needs two different companies")
        set_field(self, "amount", parse_amount(self.amount, allow_zero=False))
        if self.gift_type is not None:
            check_key(self.gift_type, "gift_type")
        check_text(self.message, "message", GIFT_MESSAGE_LENGTH_MAX)

    def scope(self, ledger: LedgerApplication) -> str:
        return self.from_company_id

    def decide(self, ledger: LedgerApplication) -> Decision[TransferMade]:
        source = ledger.get_wallet(self.from_company_id)
        source.check_transfer_allowance(self.amount, datetime.now(UTC))
        terms = TransferTerms(
            amount=self.amount,
            commission_rate=ledger.transfer_commission_rate,
            commission_account=accounts.COMMISSIONS,
            gift_type=self.gift_type,
            message=self.message,
            agency_company_id=ledger.transfer_agency_company_id,
        )
        return make_transfer(ledger, source, self.to_company_id, terms, actor=self.actor)


def make_transfer(
    ledger: LedgerApplication,
    source: Wallet,
    to_company_id: str,
    terms: TransferTerms,
    *,
    actor: str,
) -> Decision[TransferMade]:
    """The transfer, the two wallets' entries and the agency's commission, saved together."""
    target = ledger.get_wallet(to_company_id)
    if source.currency != target.currency:
        raise CurrencyMismatch(f"cannot transfer {source.currency} into a {target.currency} wallet")
    gross = terms.amount
    commission = commission_of(gross, terms.commission_rate)
    transfer = Transfer(
        from_wallet_id=source.id,
        to_wallet_id=target.id,
        from_company_id=source.company_id,
        to_company_id=to_company_id,
        currency=source.currency,
        amount=gross,
        commission_rate=terms.commission_rate,
        commission=commission,
        net_amount=gross - commission,
        commission_account=terms.commission_account,
        note=terms.note,
        actor=actor,
        gift_type=terms.gift_type,
        message=terms.message,
    )
    reference = f"transfer:{transfer.id}"
    source.send_transfer(gross, transfer_reference=reference, actor=actor)
    if gross - commission > 0:
        target.credit(
            gross - commission,
            bucket=CreditBucket.PREPAID,
            kind=CreditKind.TRANSFER,
            counter_account=accounts.TRANSFERS_IN_TRANSIT,
            reference=reference,
            actor=actor,
        )
    saved: list[Aggregate] = [transfer, source, target]
    agency = _pay_commission(ledger, terms, commission, reference, (source, target), actor)
    if agency is not None:
        saved.append(agency)
    result: TransferMade = {
        "transfer_id": str(transfer.id),
        "amount": format_amount(gross),
        "commission": format_amount(commission),
        "net_amount": format_amount(gross - commission),
    }
    return Decision(saved, result)


def _pay_commission(
    ledger: LedgerApplication,
    terms: TransferTerms,
    commission: Decimal,
    reference: str,
    parties: tuple[Wallet, Wallet],
    actor: str,
) -> Wallet | None:
    """The agency's wallet, credited with the commission from the commission account; None
    when there is no agency or no commission. An agency that is a party is that party's
    wallet (one aggregate, two entries)."""
    if terms.agency_company_id is None or commission == 0:
        return None
    agency = next((w for w in parties if w.company_id == terms.agency_company_id), None)
    is_party = agency is not None
    if agency is None:
        agency = ledger.get_wallet(terms.agency_company_id)
    if agency.currency != parties[0].currency:
        raise CurrencyMismatch(
            f"the agency's wallet is kept in {agency.currency}, the transfer in "
            f"{parties[0].currency}"
        )
    agency.credit(
        commission,
        bucket=CreditBucket.PREPAID,
        kind=CreditKind.TRANSFER,
        counter_account=terms.commission_account,
        reference=f"{reference}:commission",
        actor=actor,
    )
    return None if is_party else agency


def check_commission_account(name: str) -> str:
    if name not in COMMISSION_ACCOUNTS:
        raise InvalidArgument(f"commission_account {name!r} is not a commission account")
    return name
