"""Turns a batch of domain events into read-model row changes, in memory.

A batch is applied in two steps so the database sees set-based writes only: the writer loads the
current rows of every wallet and top-up the batch touches (one query each), ``BatchBuilder``
applies the events in order to those rows in memory, and the writer upserts the final rows and
appends the ledger entries in one transaction. Per-event work is a dictionary dispatch on the
event's class (handlers in ``projections.handlers``) and a few Decimal additions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.utils import get_topic

from ledger_service.domain.books import postings_of
from ledger_service.domain.payment_order import PaymentOrder
from ledger_service.domain.topup import TopupRequest
from ledger_service.domain.transfer import Transfer
from ledger_service.domain.wallet import Wallet
from projections.handlers import Handler, merged
from projections.handlers.grants import GRANTS
from projections.handlers.holds import HOLDS
from projections.handlers.payment_orders import PAYMENT_ORDERS
from projections.handlers.policies import POLICIES
from projections.handlers.topups import TOPUPS
from projections.handlers.transfers import TRANSFERS
from projections.handlers.wallets import WALLETS
from projections.rows import (
    AccountRow,
    AlertRow,
    EntryRow,
    HoldRow,
    PaymentOrderChange,
    PaymentOrderRow,
    TopupRow,
    TransferRow,
    UsageRow,
    WalletRow,
)

PROJECTED_TOPIC_PREFIXES = tuple(
    f"{get_topic(cls)}." for cls in (Wallet, TopupRequest, Transfer, PaymentOrder)
)
"""Events of other aggregates (sender registrations, invoice claims) change no read model, so
their notifications are skipped before decoding."""

UsageKey = tuple[str, str, str, date]
RowKind = Literal["wallet", "topup"]


@dataclass
class BatchBuilder:
    """Applies one batch of events to the rows loaded for it; the writer persists the result."""

    wallets: dict[UUID, WalletRow]
    topups: dict[UUID, TopupRow]
    entries: list[EntryRow] = field(default_factory=list)
    alerts: list[AlertRow] = field(default_factory=list)
    usage: dict[UsageKey, UsageRow] = field(default_factory=dict)
    accounts: dict[str, AccountRow] = field(default_factory=dict)
    touched_wallets: set[UUID] = field(default_factory=set)
    touched_topups: set[UUID] = field(default_factory=set)
    holds_placed: dict[UUID, HoldRow] = field(default_factory=dict)
    """Holds placed in this batch and still active at its end."""
    holds_closed: set[UUID] = field(default_factory=set)
    """Holds placed before this batch and closed in it."""
    payment_orders: dict[UUID, PaymentOrderRow] = field(default_factory=dict)
    """Payment orders created in this batch."""
    payment_order_changes: dict[UUID, PaymentOrderChange] = field(default_factory=dict)
    """Later events of orders created before this batch."""
    transfers: list[TransferRow] = field(default_factory=list)
    grants: dict[UUID, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Wallets' active grants, parsed from their rows' JSON as first needed in the batch."""

    def apply(self, position: int, event: DomainEventProtocol[UUID]) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, position, event)
        for posting in postings_of(event):
            total = self.accounts.get(posting.account)
            if total is None:
                self.accounts[posting.account] = AccountRow(
                    posting.account, posting.amount, position
                )
            else:
                total.total += posting.amount
                total.position = position

    def touch_wallet(self, position: int, event: Aggregate.Event) -> WalletRow:
        """The row of the event's wallet, marked as changed at ``position``."""
        row = self.wallets[event.originator_id]
        row.updated_at = event.timestamp
        row.position = position
        self.touched_wallets.add(row.wallet_id)
        return row

    def wallet_grants(self, row: WalletRow) -> dict[str, dict[str, Any]]:
        """The row's active grants by id, to change in place (``flush_grants`` writes them)."""
        grants = self.grants.get(row.wallet_id)
        if grants is None:
            grants = self.grants[row.wallet_id] = json.loads(row.grants)
        return grants

    def flush_grants(self) -> None:
        """Write the grants this batch changed back into their rows' JSON."""
        for wallet_id, grants in self.grants.items():
            self.wallets[wallet_id].grants = json.dumps(grants, sort_keys=True)

    def touch_topup(self, position: int, event: Aggregate.Event) -> TopupRow:
        """The row of the event's top-up request, marked as changed at ``position``."""
        row = self.topups[event.originator_id]
        row.updated_at = event.timestamp
        row.position = position
        self.touched_topups.add(row.topup_id)
        return row

    def usage_row(self, company: str, sender: str, category: str, at: datetime) -> UsageRow:
        """This batch's usage of one sender and category on the (UTC) day of ``at``."""
        day = at.date()
        key = (company, sender, category, day)
        row = self.usage.get(key)
        if row is None:
            row = self.usage[key] = UsageRow(company, sender, category, day)
        return row

    def add_alert(
        self, position: int, row: WalletRow, alert: str, detail: dict[str, Any], at: datetime
    ) -> None:
        self.alerts.append(
            AlertRow(
                position=position,
                wallet_id=row.wallet_id,
                company_id=row.company_id,
                alert=alert,
                detail=json.dumps(detail, sort_keys=True),
                occurred_at=at,
            )
        )


_HANDLERS: dict[type[Any], Handler[Any]] = merged(
    (WALLETS, GRANTS, HOLDS, POLICIES, TOPUPS, PAYMENT_ORDERS, TRANSFERS)
)

HANDLED_EVENT_CLASSES = frozenset(_HANDLERS)
HANDLED_EVENTS = frozenset(event_class.__qualname__ for event_class in _HANDLERS)
"""Qualified names of the handled event classes (for diagnostics)."""

_LOADS: dict[type[Any], RowKind] = {
    event_class: "topup" if issubclass(event_class, TopupRequest.Event) else "wallet"
    for event_class in _HANDLERS
    if not issubclass(event_class, Aggregate.Created | PaymentOrder.Event)
}
"""Events that update an existing row, and which kind: every handled event but a creation."""


def needs_loading(event: DomainEventProtocol[UUID]) -> tuple[RowKind, UUID] | None:
    """Which existing row an event updates ("wallet"/"topup", id); None for creations."""
    kind = _LOADS.get(type(event))
    return None if kind is None else (kind, event.originator_id)
