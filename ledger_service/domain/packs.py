"""Top-up packs: amounts operators offer per currency, each with bonus credit.

One ``PackCatalog`` aggregate holds every pack (a handful per currency, changed by operators
now and then): defining and retiring a pack are its events, and reading the catalog is loading
it. A top-up that names a pack records the pack's bonus with the request (``PackChosen``), so a
pack changed or retired later does not change what that request was promised; when it is paid,
the bonus is credited as a grant from ``promotions`` in the same transaction as the top-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from ledger_service.domain.errors import PackAlreadyExists, PackNotFound
from ledger_service.domain.ids import check_key
from ledger_service.domain.money import canonical, parse_amount, parse_currency

CATALOG_ID = uuid5(NAMESPACE_URL, "ledger:pack-catalog")


@dataclass(frozen=True)
class Pack:
    name: str
    currency: str
    amount: Decimal
    """What the payer buys (the amount credited)."""
    bonus: Decimal
    """Credited on top, as a grant, when a top-up of this pack is paid."""


class PackCatalog(Aggregate):
    class PackDefined(Aggregate.Event):
        name: str
        currency: str
        amount: Decimal
        bonus: Decimal
        actor: str

    class PackRetired(Aggregate.Event):
        name: str
        currency: str
        actor: str

    @staticmethod
    def create_id(**_: Any) -> UUID:
        return CATALOG_ID

    @event("Opened")
    def __init__(self) -> None:
        self.packs: dict[tuple[str, str], Pack] = {}
        """(currency, name) -> the pack, while offered."""

    def offered(self, currency: str | None = None) -> list[Pack]:
        packs = (p for p in self.packs.values() if currency in (None, p.currency))
        return sorted(packs, key=lambda p: (p.currency, p.amount, p.name))

    def pack(self, currency: str, name: str) -> Pack:
        found = self.packs.get((currency, name))
        if found is None:
            raise PackNotFound(f"no pack {name!r} in {currency}")
        return found

    def define(
        self, *, name: str, currency: str, amount: Decimal, bonus: Decimal, actor: str
    ) -> Pack:
        key = (parse_currency(currency), check_key(name, "name"))
        if key in self.packs:
            raise PackAlreadyExists(f"pack {name!r} in {currency} exists: retire it first")
        self._pack_defined(
            name=name,
            currency=currency,
            amount=canonical(parse_amount(amount, allow_zero=False)),
            bonus=canonical(parse_amount(bonus, field="bonus")),
            actor=actor,
        )
        return self.packs[key]

    @event(PackDefined)
    def _pack_defined(
        self, name: str, currency: str, amount: Decimal, bonus: Decimal, actor: str
    ) -> None:
        self.packs[(currency, name)] = Pack(name, currency, amount, bonus)

    def retire(self, *, name: str, currency: str, actor: str) -> None:
        self.pack(currency, name)
        self._pack_retired(name=name, currency=currency, actor=actor)

    @event(PackRetired)
    def _pack_retired(self, name: str, currency: str, actor: str) -> None:
        del self.packs[(currency, name)]
