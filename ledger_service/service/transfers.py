"""Transfers of prepaid money between two companies' wallets, less a commission."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar, NotRequired, TypedDict

from ledger_service.domain import accounts
from ledger_service.domain.errors import CurrencyMismatch, InvalidArgument
from ledger_service.domain.money import ZERO, format_amount, parse_amount
from ledger_service.domain.topup import check_text
from ledger_service.domain.transfer import Transfer, check_commission_rate, commission_of
from ledger_service.domain.wallet import CreditBucket, CreditKind
from ledger_service.service.runner import Command, Decision
from ledger_service.service.values import set_field

if TYPE_CHECKING:
    from ledger_service.service.ledger import LedgerApplication

COMMISSION_ACCOUNTS = (accounts.COMMISSIONS, accounts.PROMOTIONS, accounts.REVENUE_USAGE)


class TransferMade(TypedDict):
    transfer_id: str
    amount: str
    commission: str
    net_amount: str
    position: NotRequired[int | None]


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
        source = ledger.get_wallet(self.from_company_id)
        target = ledger.get_wallet(self.to_company_id)
        if source.currency != target.currency:
            raise CurrencyMismatch(
                f"cannot transfer {source.currency} into a {target.currency} wallet"
            )
        gross, rate = self.amount, self.commission_rate
        commission = commission_of(gross, rate)
        transfer = Transfer(
            from_wallet_id=source.id,
            to_wallet_id=target.id,
            from_company_id=self.from_company_id,
            to_company_id=self.to_company_id,
            currency=source.currency,
            amount=gross,
            commission_rate=rate,
            commission=commission,
            net_amount=gross - commission,
            commission_account=check_commission_account(self.commission_account),
            note=check_text(self.note, "note", 500),
            actor=self.actor,
        )
        reference = f"transfer:{transfer.id}"
        source.send_transfer(gross, transfer_reference=reference, actor=self.actor)
        if gross - commission > 0:
            target.credit(
                gross - commission,
                bucket=CreditBucket.PREPAID,
                kind=CreditKind.TRANSFER,
                counter_account=accounts.TRANSFERS_IN_TRANSIT,
                reference=reference,
                actor=self.actor,
            )
        result: TransferMade = {
            "transfer_id": str(transfer.id),
            "amount": format_amount(gross),
            "commission": format_amount(commission),
            "net_amount": format_amount(gross - commission),
        }
        return Decision([transfer, source, target], result)


def check_commission_account(name: str) -> str:
    if name not in COMMISSION_ACCOUNTS:
        raise InvalidArgument(f"commission_account {name!r} is not a commission account")
    return name
