"""`ledger audit export`: a wallet's full trail, one row per event, from the event store.

Each money movement carries balance before/after, the bucket split, counter account,
references, the acting user, the event's global position and time, and its hash-chain link.
Configuration and sender changes are rows too (amount empty), so the trail is complete.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import IO, Any
from uuid import UUID

from ledger_service.domain.adjustment import ADJUSTMENT_PREFIX
from ledger_service.domain.errors import WalletNotFound
from ledger_service.domain.grants import GRANT_PREFIX
from ledger_service.domain.ids import wallet_id
from ledger_service.domain.money import format_amount
from ledger_service.domain.refund import REFUND_PREFIX, refund_id_of_entry
from ledger_service.domain.wallet import Wallet
from ledger_service.service.ledger import LedgerApplication

TOPUP_PREFIX = "topup:"
"""The reference of a paid top-up's credit: ``topup:<topup id>:<invoice number>``."""
COLUMNS = (
    "position",
    "time",
    "version",
    "event",
    "kind",
    "amount",
    "split",
    "balance_before",
    "balance_after",
    "counter_account",
    "reference",
    "sender_id",
    "conversation_id",
    "category",
    "units",
    "unit_price",
    "actor",
    "entry_hash",
    "requested_by",
    "approved_by",
    "reason",
)
"""The last three: who asked for and who approved a manual entry (an adjustment), and why; for a
refund, who refunded and why; for a grant (its issue, credit, expiry or void), who granted it and
why; for a top-up's credit, who requested it and what paid it (``paid: stripe:evt_...``)."""


def audit_rows(
    ledger: LedgerApplication,
    company_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    pool_sender_id: str | None = None,
) -> Iterator[dict[str, Any]]:
    ident = wallet_id(company_id, pool_sender_id)
    positions = dict(ledger.command_store.select_positions(ident))
    if not positions:
        raise WalletNotFound(f"no wallet for company {company_id}")
    balance = Decimal(0)
    grants: dict[str, dict[str, str]] = {}
    event: Any
    for event in ledger.events.get(ident):
        delta = _delta(event)
        before, balance = balance, balance + delta
        if isinstance(event, Wallet.GrantIssued):
            grants[event.grant_id] = {
                "requested_by": event.actor,
                "approved_by": "",
                "reason": event.reason,
            }
        if (since and event.timestamp < since) or (until and event.timestamp >= until):
            continue
        row = _row(event, positions[event.originator_version], before, balance)
        grant = grants.get(getattr(event, "grant_id", None) or _grant_of(row["reference"]))
        yield row | (grant or _four_eyes(ledger, row["reference"]))


def _grant_of(reference: str) -> str:
    """The grant id of a grant's entry (``grant:<id>``, ``grant:<id>:expired``), else ""."""
    if not reference.startswith(GRANT_PREFIX):
        return ""
    return reference.removeprefix(GRANT_PREFIX).split(":")[0]


def _four_eyes(ledger: LedgerApplication, reference: str) -> dict[str, str]:
    """Requester, approver and reason of an adjustment's or a refund's entry, and for a top-up's
    credit who requested it and what paid it (``mark-paid``'s reference, or the payment
    provider's event: ``stripe:evt_...``); empty for other rows."""
    if reference.startswith(TOPUP_PREFIX):
        topup = ledger.get_topup(UUID(reference.split(":")[1]))
        paid = f"paid: {topup.payment_reference}"
        return {"requested_by": topup.requested_by, "approved_by": "", "reason": paid}
    if reference.startswith(REFUND_PREFIX):
        refund = ledger.get_refund(refund_id_of_entry(reference))
        if refund is not None:
            return {"requested_by": refund.actor, "approved_by": "", "reason": refund.reason}
    if not reference.startswith(ADJUSTMENT_PREFIX):
        return {"requested_by": "", "approved_by": "", "reason": ""}
    adjustment = ledger.get_adjustment(UUID(reference.removeprefix(ADJUSTMENT_PREFIX)))
    return {
        "requested_by": adjustment.requested_by,
        "approved_by": adjustment.approved_by or "",
        "reason": adjustment.reason,
    }


def _delta(event: Any) -> Decimal:
    if isinstance(event, Wallet.Credited):
        return event.amount
    if isinstance(event, Wallet.Debited):
        return -event.amount
    return Decimal(0)


def _row(event: Any, position: int, before: Decimal, after: Decimal) -> dict[str, Any]:
    money = isinstance(event, (Wallet.Credited, Wallet.Debited))
    split = getattr(event, "split", None)
    return {
        "position": position,
        "time": event.timestamp.isoformat(),
        "version": event.originator_version,
        "event": type(event).__name__,
        "kind": getattr(event, "kind", ""),
        "amount": format_amount(event.amount) if money else "",
        "split": json.dumps({k: format_amount(v) for k, v in split.items()}) if split else "",
        "balance_before": format_amount(before),
        "balance_after": format_amount(after),
        "counter_account": getattr(event, "counter_account", ""),
        "reference": getattr(event, "reference", ""),
        "sender_id": getattr(event, "sender_id", None) or getattr(event, "waba_id", "") or "",
        "conversation_id": getattr(event, "conversation_id", None) or "",
        "category": getattr(event, "category", None) or "",
        "units": getattr(event, "units", ""),
        "unit_price": _amount_or_blank(getattr(event, "unit_price", None)),
        "actor": getattr(event, "actor", ""),
        "entry_hash": getattr(event, "entry_hash", ""),
    }


def _amount_or_blank(value: Decimal | None) -> str:
    return "" if value is None else format_amount(value)


def write_rows(rows: Iterator[dict[str, Any]], out: IO[str], fmt: str) -> int:
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
    else:
        for row in rows:
            out.write(json.dumps(row) + "\n")
            count += 1
    return count
