"""Pack commands: operators define and retire the packs tenants may top up with."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, ClassVar, NotRequired, TypedDict

from ledger_service.domain.money import format_amount, parse_amount
from ledger_service.domain.packs import Pack
from ledger_service.service.runner import Command, Decision
from ledger_service.service.values import set_field

if TYPE_CHECKING:
    from ledger_service.service.ledger import LedgerApplication

SCOPE = "#packs"
"""Idempotency keys of pack commands: '#' is in no company id, so no company shares them."""


class PackState(TypedDict):
    name: str
    currency: str
    amount: str
    bonus: str
    position: NotRequired[int | None]


def pack_state(pack: Pack) -> PackState:
    return {
        "name": pack.name,
        "currency": pack.currency,
        "amount": format_amount(pack.amount),
        "bonus": format_amount(pack.bonus),
    }


@dataclass(frozen=True, kw_only=True)
class DefinePack(Command[PackState]):
    name: ClassVar[str] = "define_pack"

    pack_name: str
    currency: str
    amount: Decimal
    bonus: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        set_field(self, "amount", parse_amount(self.amount, allow_zero=False))
        set_field(self, "bonus", parse_amount(self.bonus, field="bonus"))

    def scope(self, ledger: LedgerApplication) -> str:
        return SCOPE

    def decide(self, ledger: LedgerApplication) -> Decision[PackState]:
        catalog = ledger.packs()
        pack = catalog.define(
            name=self.pack_name, currency=self.currency, amount=self.amount, bonus=self.bonus,
            actor=self.actor,
        )  # fmt: skip
        return Decision([catalog], pack_state(pack))


@dataclass(frozen=True, kw_only=True)
class RetirePack(Command[PackState]):
    """No new top-up can name the pack; requests that named it keep their bonus."""

    name: ClassVar[str] = "retire_pack"

    pack_name: str
    currency: str

    def scope(self, ledger: LedgerApplication) -> str:
        return SCOPE

    def decide(self, ledger: LedgerApplication) -> Decision[PackState]:
        catalog = ledger.packs()
        pack = catalog.pack(self.currency, self.pack_name)
        catalog.retire(name=self.pack_name, currency=self.currency, actor=self.actor)
        return Decision([catalog], pack_state(pack))
