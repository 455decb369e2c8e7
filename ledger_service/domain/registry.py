"""Uniqueness claims that span aggregates, enforced by the event store's primary key.

A sender belongs to at most one wallet, and an invoice number is issued once. Both are modelled
as small aggregates with ids derived from the claimed key: two writers claiming the same key in
the same instant both try to write version N of the same aggregate, and one of them fails.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger_service.domain.errors import SenderAlreadyLinked, SenderNotLinked
from ledger_service.domain.ids import invoice_claim_id, sender_registration_id


class SenderRegistration(Aggregate):
    """Which wallet a sender (WABA) draws from now, if any."""

    @staticmethod
    def create_id(waba_id: str, **_: Any) -> UUID:
        return sender_registration_id(waba_id)

    @event("Registered")
    def __init__(self, waba_id: str) -> None:
        self.waba_id = waba_id
        self.wallet_id: UUID | None = None
        self.company_id: str | None = None

    def assign(self, *, wallet_id: UUID, company_id: str, actor: str) -> None:
        if self.wallet_id is not None:
            raise SenderAlreadyLinked(
                f"sender {self.waba_id} is already linked to a wallet of {self.company_id}"
            )
        self._assigned(wallet_id=wallet_id, company_id=company_id, actor=actor)

    @event("Assigned")
    def _assigned(self, wallet_id: UUID, company_id: str, actor: str) -> None:
        self.wallet_id = wallet_id
        self.company_id = company_id

    def release(self, *, wallet_id: UUID, actor: str) -> None:
        if self.wallet_id != wallet_id:
            raise SenderNotLinked(f"sender {self.waba_id} is not linked to that wallet")
        self._released(actor=actor)

    @event("Released")
    def _released(self, actor: str) -> None:
        self.wallet_id = None
        self.company_id = None


class InvoiceNumberClaim(Aggregate):
    @staticmethod
    def create_id(invoice_number: str, **_: Any) -> UUID:
        return invoice_claim_id(invoice_number)

    @event("Claimed")
    def __init__(self, invoice_number: str, topup_id: UUID) -> None:
        self.invoice_number = invoice_number
        self.topup_id = topup_id
