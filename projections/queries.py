"""Queries of the read models, for the HTTP API (asyncpg; the caller owns the pool).

Every query names its tables through ``ReadModelTables`` so the API reads whichever schema the
live projection writes. Pagination is by event-store position (newest first): stable under
concurrent inserts, and a cursor is simply the last position seen.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import asyncpg

from projections.rows import WalletRow, select_list
from projections.tables import PROJECTION_NAME, ReadModelTables

GroupBy = Literal["sender", "category", "day"]
_GROUP_COLUMNS: dict[str, str] = {"sender": "sender_id", "category": "category", "day": "day::text"}
POSITION_POLL_INTERVAL_S = 0.01
_ENTRY_FILTERS = (
    "($1::text IS NULL OR company_id = $1) AND ($2::text IS NULL OR kind = $2) "
    "AND ($3::text IS NULL OR sender_id = $3) "
    "AND ($4::timestamptz IS NULL OR occurred_at >= $4) "
    "AND ($5::timestamptz IS NULL OR occurred_at < $5)"
)
_TRANSFER_FILTERS = (
    "($1::text IS NULL OR from_company_id = $1 OR to_company_id = $1) "
    "AND ($2::timestamptz IS NULL OR occurred_at >= $2) "
    "AND ($3::timestamptz IS NULL OR occurred_at < $3)"
)
_LEDGER_TOTALS = (
    # (name, sign, which entries): debits are stored negative, so outflows are negated.
    ("purchased", "", "e.kind = 'topup'"),
    ("granted", "", "e.kind = 'grant'"),
    ("refunded", "", "e.kind = 'refund'"),
    ("transferred_in", "", "e.kind = 'transfer' AND e.direction = 'credit'"),
    ("transferred_out", "-", "e.kind = 'transfer' AND e.direction = 'debit'"),
    ("adjusted", "", "e.kind = 'adjustment'"),
    ("used", "-", "e.kind = 'usage'"),
    ("expired", "-", "e.kind = 'expiry'"),
    ("balance", "", "true"),
)


@dataclass(frozen=True, slots=True)
class EntryFilters:
    """Which ledger entries: every filter is optional; ``until`` is exclusive."""

    company_id: str | None = None
    kind: str | None = None
    sender: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def arguments(self) -> tuple[object, ...]:
        return (self.company_id, self.kind, self.sender, self.since, self.until)


class ReadModels:
    def __init__(self, pool: asyncpg.Pool, tables: ReadModelTables | None = None) -> None:
        self.pool = pool
        self.t = tables or ReadModelTables()
        t = self.t
        self._sql_wallet = (
            f"SELECT {select_list(WalletRow, derived=True)} FROM {t['rm_wallet_balances']} "
            "WHERE company_id = $1 AND pool_sender_id IS NOT DISTINCT FROM $2"
        )
        self._sql_authorization = (
            "SELECT wallet_id, balance, available, senders, rate_card::text, policies::text, "
            f"blocked::text, position FROM {t['rm_wallet_balances']} "
            "WHERE company_id = $1 AND $2 = ANY(senders)"
        )
        self._sql_position = f"SELECT position FROM {t['rm_projection_positions']} WHERE name = $1"

    async def position(self) -> int:
        value = await self.pool.fetchval(self._sql_position, PROJECTION_NAME)
        return int(value or 0)

    async def wait_for(self, min_position: int, timeout_s: float) -> bool:
        """Wait (bounded) until the projection has committed ``min_position``."""
        deadline = time.monotonic() + timeout_s
        while True:
            if await self.position() >= min_position:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POSITION_POLL_INTERVAL_S)

    async def legacy_pools(self, company_id: str) -> list[str]:
        """The senders of the company's per-sender pools (merged ones too: a merge skips them)."""
        rows = await self.pool.fetch(
            f"SELECT pool_sender_id FROM {self.t['rm_wallet_balances']} "
            "WHERE company_id = $1 AND mode = 'per_sender' ORDER BY pool_sender_id",
            company_id,
        )
        return [str(r["pool_sender_id"]) for r in rows]

    async def pool_coverage(self, limit: int) -> list[Any]:
        """Per-sender pools still in use: with a sender linked, or money, debt, quota, grants
        or holds in them; by company and sender."""
        return list(
            await self.pool.fetch(
                "SELECT company_id, pool_sender_id, senders, currency, balance "
                f"FROM {self.t['rm_wallet_balances']} WHERE mode = 'per_sender' AND "
                "(cardinality(senders) > 0 OR included <> 0 OR prepaid <> 0 "
                "OR postpaid_used <> 0 OR granted <> 0 OR held <> 0) "
                "ORDER BY company_id, pool_sender_id LIMIT $1",
                limit,
            )
        )

    async def wallet(self, company_id: str, pool_sender_id: str | None = None) -> Any:
        return await self.pool.fetchrow(self._sql_wallet, company_id, pool_sender_id)

    async def company_totals(self, company_id: str) -> list[Any]:
        """Every pool of a company (its shared pool, legacy per-sender pools) summed bucket by
        bucket, one row per currency; ``shared``: one of them is the company's shared pool."""
        return list(
            await self.pool.fetch(
                "SELECT currency, count(*) AS pools, bool_or(mode = 'shared') AS shared, "
                "sum(included) AS included, sum(granted) AS granted, sum(prepaid) AS prepaid, "
                "sum(postpaid_used) AS postpaid_used, sum(postpaid_limit) AS postpaid_limit, "
                "sum(held) AS held, max(position) AS position "
                f"FROM {self.t['rm_wallet_balances']} WHERE company_id = $1 GROUP BY currency",
                company_id,
            )
        )

    async def wallet_of_sender(self, company_id: str, waba_id: str) -> Any:
        """The wallet (of ``company_id``) that ``waba_id`` draws from, or None."""
        return await self.pool.fetchrow(self._sql_authorization, company_id, waba_id)

    async def holds(self, company_id: str, limit: int) -> list[Any]:
        """The company's active holds, soonest to expire first."""
        return list(
            await self.pool.fetch(
                f"SELECT * FROM {self.t['rm_holds']} WHERE company_id = $1 "
                "ORDER BY expires_at, hold_id LIMIT $2",
                company_id,
                limit,
            )
        )

    async def alerts(self, company_id: str, before: int | None, limit: int) -> list[Any]:
        """Alerts of the company's wallets, newest first (``limit + 1`` rows for paging)."""
        rows = await self.pool.fetch(
            f"SELECT position, alert, detail::text, occurred_at FROM {self.t['rm_alerts']} "
            "WHERE company_id = $1 AND position < $2 ORDER BY position DESC LIMIT $3",
            company_id,
            before if before is not None else 2**62,
            limit + 1,
        )
        return list(rows)

    async def wallets(
        self, search: str | None, after: tuple[str, str] | None, limit: int
    ) -> list[Any]:
        """Pools whose company id contains ``search`` (a validated key: no wildcards but
        ``_``), ordered by (company id, pool sender id or ''); ``after`` is the last row's pair,
        for the next page of the operators' list."""
        company, pool = after or (None, None)
        return list(
            await self.pool.fetch(
                "SELECT company_id, pool_sender_id, currency, balance, available, held, "
                "cardinality(senders) AS sender_count, alerts_active, updated_at "
                f"FROM {self.t['rm_wallet_balances']} "
                "WHERE ($1::text IS NULL OR company_id ILIKE '%' || $1 || '%') "
                "AND ($2::text IS NULL OR (company_id, coalesce(pool_sender_id, '')) > ($2, $3)) "
                "ORDER BY company_id, coalesce(pool_sender_id, '') LIMIT $4",
                search or None,
                company,
                pool,
                limit,
            )
        )

    async def admin_entries(
        self, filters: EntryFilters, *, before_position: int | None, limit: int
    ) -> list[Any]:
        """Every company's ledger entries, newest first (the primary key's order)."""
        return list(
            await self.pool.fetch(
                f"SELECT * FROM {self.t['rm_ledger_entries']} WHERE {_ENTRY_FILTERS} "
                "AND ($6::bigint IS NULL OR position < $6) ORDER BY position DESC LIMIT $7",
                *filters.arguments(),
                before_position,
                limit,
            )
        )

    async def entry_summary(self, filters: EntryFilters) -> list[Any]:
        """Count and sum of the filtered entries by kind and direction (amounts are of mixed
        currencies unless the filters name one company of one currency)."""
        return list(
            await self.pool.fetch(
                "SELECT kind, direction, count(*)::bigint AS count, sum(amount) AS amount "
                f"FROM {self.t['rm_ledger_entries']} WHERE {_ENTRY_FILTERS} "
                "GROUP BY kind, direction ORDER BY kind, direction",
                *filters.arguments(),
            )
        )

    async def transfers(
        self, filters: EntryFilters, *, before_position: int | None, limit: int
    ) -> list[Any]:
        """Transfers sent or received by ``filters.company_id`` (every company's when None),
        within the time filters, newest first."""
        return list(
            await self.pool.fetch(
                f"SELECT * FROM {self.t['rm_transfers']} WHERE {_TRANSFER_FILTERS} "
                "AND ($4::bigint IS NULL OR position < $4) ORDER BY position DESC LIMIT $5",
                filters.company_id,
                filters.since,
                filters.until,
                before_position,
                limit,
            )
        )

    async def transfer_totals(self, filters: EntryFilters) -> list[Any]:
        """Count and sums of the filtered transfers per currency; ``sent`` and ``received``
        are the company's own sides (zero without a company)."""
        return list(
            await self.pool.fetch(
                "SELECT currency, count(*)::bigint AS count, sum(amount) AS amount, "
                "sum(commission) AS commission, sum(net_amount) AS net_amount, "
                "coalesce(sum(amount) FILTER (WHERE from_company_id = $1), 0) AS sent, "
                "coalesce(sum(net_amount) FILTER (WHERE to_company_id = $1), 0) AS received "
                f"FROM {self.t['rm_transfers']} WHERE {_TRANSFER_FILTERS} "
                "GROUP BY currency ORDER BY currency",
                filters.company_id,
                filters.since,
                filters.until,
            )
        )

    async def company_ledger(self, company_id: str) -> list[Any]:
        """A company's money by where it came from and went, per currency, over all its
        pools; the figures of a currency add up to the balance of its pools."""
        entries, wallets = self.t["rm_ledger_entries"], self.t["rm_wallet_balances"]
        sums = ", ".join(
            f"coalesce({sign}sum(e.amount) FILTER (WHERE {condition}), 0) AS {name}"
            for name, sign, condition in _LEDGER_TOTALS
        )
        return list(
            await self.pool.fetch(
                f"SELECT w.currency, count(*)::bigint AS entries, {sums}, "
                "max(e.position) AS position "
                f"FROM {entries} e JOIN {wallets} w USING (wallet_id) "
                "WHERE e.company_id = $1 GROUP BY w.currency ORDER BY w.currency",
                company_id,
            )
        )

    async def usage_overview(
        self, company_id: str, *, sender: str | None, since: date, burn_since: datetime
    ) -> list[Any]:
        """The console's usage page in one round trip: rows of ``grp`` 'day' and 'category'
        (of ``sender`` when given), 'sender' (every sender) since ``since``, and one 'burn' row
        (what usage cost since ``burn_since``)."""
        usage = self.t["rm_usage_daily"]
        figures = "sum(billable_count)::bigint AS billable_count, sum(units)::bigint AS units, "
        figures += "sum(amount) AS amount"
        mine = "company_id = $1 AND day >= $3"
        return list(
            await self.pool.fetch(
                f"SELECT 'day' AS grp, day::text AS key, {figures} FROM {usage} "
                f"WHERE {mine} AND ($2::text IS NULL OR sender_id = $2) GROUP BY day "
                f"UNION ALL SELECT 'category', category, {figures} FROM {usage} "
                f"WHERE {mine} AND ($2::text IS NULL OR sender_id = $2) GROUP BY category "
                f"UNION ALL SELECT 'sender', sender_id, {figures} FROM {usage} "
                f"WHERE {mine} GROUP BY sender_id "
                "UNION ALL SELECT 'burn', NULL, 0, 0, "
                "coalesce(-sum(amount) FILTER (WHERE kind = 'usage'), 0) "
                f"FROM {self.t['rm_ledger_entries']} WHERE company_id = $1 AND occurred_at >= $4 "
                "ORDER BY 1, 2",
                company_id,
                sender,
                since,
                burn_since,
            )
        )

    async def usage_since(self, company_id: str, since: datetime) -> Decimal:
        """What the company's usage cost since ``since`` (the console's 24-hour burn): the
        usage debits of all its pools; refunds are not netted."""
        total = await self.pool.fetchval(
            "SELECT coalesce(-sum(amount) FILTER (WHERE kind = 'usage'), 0) "
            f"FROM {self.t['rm_ledger_entries']} WHERE company_id = $1 AND occurred_at >= $2",
            company_id,
            since,
        )
        return Decimal(total)

    async def wallet_exists(self, company_id: str) -> bool:
        row = await self.pool.fetchval(
            f"SELECT 1 FROM {self.t['rm_wallet_balances']} WHERE company_id = $1 LIMIT 1",
            company_id,
        )
        return row is not None

    async def entries(
        self,
        company_id: str,
        *,
        kind: str | None,
        sender: str | None,
        since: datetime | None,
        until: datetime | None,
        before_position: int | None,
        limit: int,
    ) -> list[Any]:
        return list(
            await self.pool.fetch(
                f"SELECT * FROM {self.t['rm_ledger_entries']} WHERE company_id = $1 "
                "AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR sender_id = $3) "
                "AND ($4::timestamptz IS NULL OR occurred_at >= $4) "
                "AND ($5::timestamptz IS NULL OR occurred_at < $5) "
                "AND ($6::bigint IS NULL OR position < $6) "
                "ORDER BY position DESC LIMIT $7",
                company_id,
                kind,
                sender,
                since,
                until,
                before_position,
                limit,
            )
        )

    async def usage(
        self,
        company_id: str,
        *,
        group_by: GroupBy,
        sender: str | None,
        since: date | None,
        until: date | None,
    ) -> list[Any]:
        column = _GROUP_COLUMNS[group_by]
        return list(
            await self.pool.fetch(
                f"SELECT {column} AS key, sum(billable_count)::bigint AS billable_count, "
                "sum(failed_count)::bigint AS failed_count, sum(units)::bigint AS units, "
                "sum(failed_units)::bigint AS failed_units, sum(amount) AS amount "
                f"FROM {self.t['rm_usage_daily']} WHERE company_id = $1 "
                "AND ($2::text IS NULL OR sender_id = $2) "
                "AND ($3::date IS NULL OR day >= $3) AND ($4::date IS NULL OR day <= $4) "
                f"GROUP BY {column} ORDER BY {column}",
                company_id,
                sender,
                since,
                until,
            )
        )

    async def topups(
        self,
        *,
        company_id: str | None,
        status: str | None,
        before_position: int | None,
        limit: int,
    ) -> list[Any]:
        return list(
            await self.pool.fetch(
                f"SELECT * FROM {self.t['rm_topups']} "
                "WHERE ($1::text IS NULL OR company_id = $1) "
                "AND ($2::text IS NULL OR status = $2) "
                "AND ($3::bigint IS NULL OR created_position < $3) "
                "ORDER BY created_position DESC LIMIT $4",
                company_id,
                status,
                before_position,
                limit,
            )
        )

    async def topup(self, topup_id: UUID) -> Any:
        return await self.pool.fetchrow(
            f"SELECT * FROM {self.t['rm_topups']} WHERE topup_id = $1", topup_id
        )

    async def payment_order(self, order_id: UUID) -> Any:
        return await self.pool.fetchrow(
            f"SELECT * FROM {self.t['rm_payment_orders']} WHERE payment_order_id = $1", order_id
        )

    async def payment_orders_of(self, topup_id: UUID) -> list[Any]:
        """A top-up's payment orders, oldest first (a handful at most)."""
        return list(
            await self.pool.fetch(
                f"SELECT * FROM {self.t['rm_payment_orders']} WHERE topup_id = $1 "
                "ORDER BY created_at, payment_order_id LIMIT 100",
                topup_id,
            )
        )

    async def admin_stats(self) -> dict[str, Any]:
        """Figures from one snapshot, so they agree with each other and with ``position``."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            position = await conn.fetchval(self._sql_position, PROJECTION_NAME)
            circulation = await conn.fetch(
                "SELECT currency, count(*) AS wallets, sum(included) AS included, "
                "sum(granted) AS granted, sum(prepaid) AS prepaid, "
                "sum(postpaid_used) AS postpaid_used, "
                f"sum(balance) AS balance FROM {self.t['rm_wallet_balances']} "
                "GROUP BY currency ORDER BY currency"
            )
            topups = await conn.fetch(
                "SELECT status, count(*) AS count, sum(amount) AS amount "
                f"FROM {self.t['rm_topups']} GROUP BY status ORDER BY status"
            )
            usage = await conn.fetchrow(
                "SELECT coalesce(sum(billable_count), 0)::bigint AS billable_count, "
                "coalesce(sum(failed_count), 0)::bigint AS failed_count, "
                "coalesce(sum(units), 0)::bigint AS units, coalesce(sum(amount), 0) AS amount "
                f"FROM {self.t['rm_usage_daily']}"
            )
        return {
            "position": int(position or 0),
            "circulation": circulation,
            "topups": topups,
            "usage": usage,
        }
