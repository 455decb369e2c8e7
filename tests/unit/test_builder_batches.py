"""The batch builder alone (no database): top-ups, batches that continue from loaded rows, and
the dispatch table."""

from __future__ import annotations

import copy
from uuid import uuid4

import pytest

from ledger_service.domain.topup import TopupRequest
from ledger_service.domain.transfer import Transfer
from ledger_service.domain.wallet import CreditBucket, Wallet
from projections.builder import HANDLED_EVENT_CLASSES, BatchBuilder, needs_loading
from projections.handlers import HandlerTable, merged
from tests.unit.builder_support import Log, credit, open_wallet, request_topup, use


def test_a_topup_lifecycle_fills_its_row() -> None:
    log = Log()
    topup = request_topup(uuid4())
    [requested] = log.record(topup)
    assert needs_loading(requested) is None
    row = log.builder.topups[topup.id]
    assert (row.status, row.requested_by, row.created_position, row.note) == (
        "pending", "alice", 1, "n"
    )  # fmt: skip
    topup.approve(invoice_number="INV-1", actor="op")
    topup.mark_paid(payment_reference="bank-1", actor="cashier")
    approved, invoiced, paid, completed = log.record(topup)
    assert needs_loading(approved) == ("topup", topup.id)
    assert (row.status, row.invoice_number, row.payment_reference) == (
        "completed", "INV-1", "bank-1"
    )  # fmt: skip
    assert (row.approved_by, row.paid_by, row.created_position, row.position) == (
        "op", "cashier", 1, 5
    )  # fmt: skip
    assert (row.approved_at, row.invoiced_at, row.paid_at, row.completed_at) == (
        approved.timestamp, invoiced.timestamp, paid.timestamp, completed.timestamp
    )  # fmt: skip
    assert (row.rejected_at, row.cancelled_at, row.reason) == (None, None, None)
    assert log.builder.touched_topups == {topup.id}
    assert not log.builder.touched_wallets, "the credit is the wallet's own event"


@pytest.mark.parametrize("outcome", ["rejected", "cancelled"])
def test_a_refused_topup_keeps_who_and_why(outcome: str) -> None:
    log = Log()
    topup = request_topup(uuid4())
    if outcome == "rejected":
        topup.reject(reason="no PO", actor="op")
    else:
        topup.approve(invoice_number="INV-2", actor="op")
        topup.cancel(reason="no PO", actor="op")
    *_, last = log.record(topup)
    row = log.builder.topups[topup.id]
    assert (row.status, row.reason) == (outcome, "no PO")
    assert (getattr(row, f"{outcome}_by"), getattr(row, f"{outcome}_at")) == ("op", last.timestamp)


def test_a_batch_continues_from_the_rows_the_previous_one_left() -> None:
    """The live projector loads, for each batch, the rows it updates; the result must be the
    rows one pass over the whole history makes."""
    whole = Log()
    wallet = open_wallet(limit="10")
    credit(wallet, "3", CreditBucket.INCLUDED)
    use(wallet, "15")
    topup = request_topup(wallet.id)
    cut = len(whole.record(wallet, topup))
    topup.approve(invoice_number="INV-1", actor="op")
    credit(wallet, "40")
    use(wallet, "2")
    whole.record(topup, wallet)
    first = BatchBuilder(wallets={}, topups={})
    for position, event in whole.events[:cut]:
        first.apply(position, event)
    second = BatchBuilder(wallets=copy.deepcopy(first.wallets), topups=copy.deepcopy(first.topups))
    for position, event in whole.events[cut:]:
        assert needs_loading(event) in {("wallet", wallet.id), ("topup", topup.id)}
        second.apply(position, event)
    assert second.wallets == whole.builder.wallets
    assert second.topups == whole.builder.topups
    assert first.entries + second.entries == whole.builder.entries
    assert first.alerts + second.alerts == whole.builder.alerts


def test_every_wallet_topup_and_transfer_event_has_a_handler() -> None:
    for aggregate in (Wallet, TopupRequest, Transfer):
        declared = {
            value
            for name, value in vars(aggregate).items()
            if isinstance(value, type)
            and issubclass(value, aggregate.Event)
            and name not in {"Event", "Created"}
        }
        assert declared <= HANDLED_EVENT_CLASSES, aggregate.__name__
    assert Transfer.Completed in HANDLED_EVENT_CLASSES, "it writes rm_transfers"


def test_a_handler_table_refuses_a_second_handler_for_an_event() -> None:
    table, other = HandlerTable(), HandlerTable()

    @table.on(Wallet.SenderLinked)
    def linked(b: BatchBuilder, position: int, event: Wallet.SenderLinked) -> None: ...

    with pytest.raises(TypeError, match="already has a handler"):
        table.on(Wallet.SenderLinked)(linked)
    other.on(Wallet.SenderLinked)(linked)
    with pytest.raises(TypeError, match="handled twice"):
        merged((table, other))
