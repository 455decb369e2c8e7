"""Reads the rows a batch updates and writes what the builder made of them, set-based.

Every statement is derived from the row classes of ``projections.rows`` (their columns, their
``jsonb`` columns, their keys and added counts), so the column lists are written nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import psycopg

from projections.builder import BatchBuilder, needs_loading
from projections.rows import (
    AccountRow,
    AlertRow,
    EntryRow,
    HoldRow,
    PaymentOrderRow,
    Row,
    TopupRow,
    TransferRow,
    UsageRow,
    WalletRow,
    columns,
    jsonb_columns,
    select_list,
    values_of,
)
from projections.tables import (
    ACCOUNTS,
    ALERTS,
    ENTRIES,
    HOLDS,
    PAYMENT_ORDERS,
    TOPUPS,
    TRANSFERS,
    USAGE,
    WALLETS,
    ReadModelTables,
)

_wallet_values = values_of(WalletRow)
_topup_values = values_of(TopupRow)
_alert_values = values_of(AlertRow)
_usage_values = values_of(UsageRow)
_account_values = values_of(AccountRow)
_order_values = values_of(PaymentOrderRow)


def insert_sql(table: str, row_class: type[Row]) -> str:
    names = columns(row_class)
    jsonb = jsonb_columns(row_class)
    values = ", ".join("%s::jsonb" if n in jsonb else "%s" for n in names)
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({values})"


def upsert_sql(table: str, row_class: type[Row], key: tuple[str, ...]) -> str:
    """Insert a row or update it in place: columns a batch counts (``ADDED``) are added to the
    stored value, every other column is replaced by the batch's."""
    added: tuple[str, ...] = getattr(row_class, "ADDED", ())
    updates = ", ".join(
        f"{n} = {table}.{n} + EXCLUDED.{n}" if n in added else f"{n} = EXCLUDED.{n}"
        for n in columns(row_class)
        if n not in key
    )
    return f"{insert_sql(table, row_class)} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"


class RowWriter:
    """The statements of one set of read-model tables, and the batch reads and writes."""

    def __init__(self, tables: ReadModelTables) -> None:
        self.tables = tables
        self.wallet_select = (
            f"SELECT {select_list(WalletRow)} FROM {tables[WALLETS]} WHERE wallet_id = ANY(%s)"
        )
        self.topup_select = (
            f"SELECT {select_list(TopupRow)} FROM {tables[TOPUPS]} WHERE topup_id = ANY(%s)"
        )
        self.entry_copy = f"COPY {tables[ENTRIES]} ({', '.join(columns(EntryRow))}) FROM STDIN"
        self.alert_insert = insert_sql(tables[ALERTS], AlertRow)
        self.transfer_insert = insert_sql(tables[TRANSFERS], TransferRow)
        self.wallet_upsert = upsert_sql(tables[WALLETS], WalletRow, ("wallet_id",))
        self.topup_upsert = upsert_sql(tables[TOPUPS], TopupRow, ("topup_id",))
        self.usage_upsert = upsert_sql(tables[USAGE], UsageRow, UsageRow.KEY)
        self.account_upsert = upsert_sql(tables[ACCOUNTS], AccountRow, AccountRow.KEY)
        self.hold_upsert = upsert_sql(tables[HOLDS], HoldRow, ("hold_id",))
        self.hold_delete = f"DELETE FROM {tables[HOLDS]} WHERE hold_id = ANY(%s)"
        orders = tables[PAYMENT_ORDERS]
        self.order_upsert = upsert_sql(orders, PaymentOrderRow, ("payment_order_id",))
        self.order_update = (
            f"UPDATE {orders} SET status = COALESCE(%(status)s, status), "
            "checkout_url = COALESCE(%(checkout_url)s, checkout_url), "
            "failure_reason = COALESCE(%(failure_reason)s, failure_reason), "
            "updated_at = %(updated_at)s, position = %(position)s "
            "WHERE payment_order_id = %(payment_order_id)s"
        )

    def load(self, cur: psycopg.Cursor[Any], events: Iterable[tuple[int, Any]]) -> BatchBuilder:
        """A builder holding the stored rows that ``events`` update (creations need none)."""
        wallet_ids: set[UUID] = set()
        topup_ids: set[UUID] = set()
        for _, event in events:
            load = needs_loading(event)
            if load is not None:
                (wallet_ids if load[0] == "wallet" else topup_ids).add(load[1])
        wallets: dict[UUID, WalletRow] = {}
        topups: dict[UUID, TopupRow] = {}
        if wallet_ids:
            cur.execute(self.wallet_select, (list(wallet_ids),))
            wallets = {row[0]: WalletRow(*row) for row in cur.fetchall()}
        if topup_ids:
            cur.execute(self.topup_select, (list(topup_ids),))
            topups = {row[0]: TopupRow(*row) for row in cur.fetchall()}
        return BatchBuilder(wallets=wallets, topups=topups)

    def write(self, cur: psycopg.Cursor[Any], batch: BatchBuilder) -> None:
        """Append the batch's entries and alerts, upsert its rows (in a stable order)."""
        batch.flush_grants()
        if batch.entries:
            with cur.copy(self.entry_copy) as copy:
                for entry in batch.entries:
                    copy.write_row(entry)
        if batch.alerts:
            cur.executemany(self.alert_insert, [_alert_values(a) for a in batch.alerts])
        if batch.transfers:
            cur.executemany(self.transfer_insert, batch.transfers)
        if batch.touched_wallets:
            wallets = [_wallet_values(batch.wallets[w]) for w in sorted(batch.touched_wallets)]
            cur.executemany(self.wallet_upsert, wallets)
        if batch.touched_topups:
            topups = [_topup_values(batch.topups[t]) for t in sorted(batch.touched_topups)]
            cur.executemany(self.topup_upsert, topups)
        if batch.holds_closed:  # before the placed: a reference's hold may close and come back
            cur.execute(self.hold_delete, (sorted(batch.holds_closed),))
        if batch.holds_placed:
            cur.executemany(
                self.hold_upsert, [batch.holds_placed[h] for h in sorted(batch.holds_placed)]
            )
        if batch.payment_orders:
            orders = [_order_values(batch.payment_orders[o]) for o in sorted(batch.payment_orders)]
            cur.executemany(self.order_upsert, orders)
        if batch.payment_order_changes:
            changes = [c._asdict() for _, c in sorted(batch.payment_order_changes.items())]
            cur.executemany(self.order_update, changes)
        if batch.usage:
            cur.executemany(self.usage_upsert, [_usage_values(u) for u in batch.usage.values()])
        if batch.accounts:
            accounts = [_account_values(a) for a in batch.accounts.values()]
            cur.executemany(self.account_upsert, accounts)
