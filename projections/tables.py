"""Read-model tables, in a Postgres schema chosen by the caller.

Every table name is qualified with ``ReadModelTables.schema``, so a rebuild can project the whole
event history into a fresh schema and swap it in atomically (``ledger replay``, later). Rows hold
only what follows from the events (timestamps are the events' own), so a rebuild is equal to what
the live projection built, row for row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_SCHEMA = "public"
PROJECTION_NAME = "read_models"
_SCHEMA_TEXT = re.compile(r"[a-z_][a-z0-9_]{0,62}")

WALLETS = "rm_wallet_balances"
ENTRIES = "rm_ledger_entries"
USAGE = "rm_usage_daily"
TOPUPS = "rm_topups"
ACCOUNTS = "rm_account_totals"
ALERTS = "rm_alerts"
HOLDS = "rm_holds"
PAYMENT_ORDERS = "rm_payment_orders"
TRANSFERS = "rm_transfers"
POSITIONS = "rm_projection_positions"
ALL_TABLES = (
    WALLETS, ENTRIES, USAGE, TOPUPS, ACCOUNTS, ALERTS, HOLDS, PAYMENT_ORDERS, TRANSFERS, POSITIONS,
)  # fmt: skip
"""Every read-model table; the positions table is last (it says how far the others are)."""

BASELINE_DDL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.rm_wallet_balances (
    wallet_id uuid PRIMARY KEY,
    company_id text NOT NULL,
    pool_sender_id text,
    currency text NOT NULL,
    mode text NOT NULL,
    included numeric NOT NULL,
    prepaid numeric NOT NULL,
    postpaid_used numeric NOT NULL,
    postpaid_limit numeric NOT NULL,
    included_quota numeric NOT NULL,
    overage_total numeric NOT NULL,
    balance numeric NOT NULL,
    available numeric NOT NULL,
    senders text[] NOT NULL,
    rate_card jsonb NOT NULL,
    opened_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    position bigint NOT NULL,
    policies jsonb NOT NULL DEFAULT '{{}}',
    cycle_start timestamptz,
    next_cycle_at timestamptz,
    alerts_active text[] NOT NULL DEFAULT '{{}}',
    blocked jsonb NOT NULL DEFAULT '{{}}',
    granted numeric NOT NULL DEFAULT 0,
    grants jsonb NOT NULL DEFAULT '{{}}',
    next_grant_expiry_at timestamptz,
    held numeric NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS rm_wallet_balances_company ON {s}.rm_wallet_balances (company_id);
-- Policy columns came with alerts and cycles: tables built before them get the columns here
-- (only then: ALTER TABLE locks out the live projector), and `ledger replay --all` fills them.
DO $migrate$ BEGIN
IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = '{name}'
               AND table_name = 'rm_wallet_balances' AND column_name = 'blocked') THEN
ALTER TABLE {s}.rm_wallet_balances
    ADD COLUMN IF NOT EXISTS policies jsonb NOT NULL DEFAULT '{{}}',
    ADD COLUMN IF NOT EXISTS cycle_start timestamptz,
    ADD COLUMN IF NOT EXISTS next_cycle_at timestamptz,
    ADD COLUMN IF NOT EXISTS alerts_active text[] NOT NULL DEFAULT '{{}}',
    ADD COLUMN IF NOT EXISTS blocked jsonb NOT NULL DEFAULT '{{}}';
END IF;
END $migrate$;
CREATE INDEX IF NOT EXISTS rm_wallet_balances_next_cycle
    ON {s}.rm_wallet_balances (next_cycle_at);
-- Grants came later still: the same migration for their columns (nothing to fill: no wallet
-- had a grant before them).
DO $migrate$ BEGIN
IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = '{name}'
               AND table_name = 'rm_wallet_balances' AND column_name = 'next_grant_expiry_at')
THEN
ALTER TABLE {s}.rm_wallet_balances
    ADD COLUMN IF NOT EXISTS granted numeric NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS grants jsonb NOT NULL DEFAULT '{{}}',
    ADD COLUMN IF NOT EXISTS next_grant_expiry_at timestamptz;
END IF;
END $migrate$;
DO $migrate$ BEGIN
IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = '{name}'
               AND table_name = 'rm_wallet_balances' AND column_name = 'held') THEN
ALTER TABLE {s}.rm_wallet_balances ADD COLUMN IF NOT EXISTS held numeric NOT NULL DEFAULT 0;
END IF;
END $migrate$;
DO $migrate$ BEGIN
IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = '{name}'
               AND table_name = 'rm_wallet_balances' AND column_name = 'tax_percent') THEN
ALTER TABLE {s}.rm_wallet_balances ADD COLUMN IF NOT EXISTS tax_percent numeric;
END IF;
END $migrate$;
-- The active holds only: a hold's row goes when it is settled, released or expired.
CREATE TABLE IF NOT EXISTS {s}.rm_holds (
    hold_id uuid PRIMARY KEY,
    wallet_id uuid NOT NULL,
    company_id text NOT NULL,
    reference text NOT NULL,
    source text,
    sender_id text NOT NULL,
    category text NOT NULL,
    units integer NOT NULL,
    amount numeric NOT NULL,
    expires_at timestamptz NOT NULL,
    placed_at timestamptz NOT NULL,
    placed_by text NOT NULL,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_holds_company ON {s}.rm_holds (company_id, expires_at);
CREATE INDEX IF NOT EXISTS rm_holds_expiry ON {s}.rm_holds (expires_at);
CREATE INDEX IF NOT EXISTS rm_wallet_balances_next_grant_expiry
    ON {s}.rm_wallet_balances (next_grant_expiry_at) WHERE next_grant_expiry_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS {s}.rm_alerts (
    position bigint PRIMARY KEY,
    wallet_id uuid NOT NULL,
    company_id text NOT NULL,
    alert text NOT NULL,
    detail jsonb NOT NULL,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_alerts_company ON {s}.rm_alerts (company_id, position DESC);
CREATE TABLE IF NOT EXISTS {s}.rm_ledger_entries (
    position bigint PRIMARY KEY,
    wallet_id uuid NOT NULL,
    company_id text NOT NULL,
    direction text NOT NULL,
    kind text NOT NULL,
    amount numeric NOT NULL,
    included numeric NOT NULL,
    prepaid numeric NOT NULL,
    postpaid numeric NOT NULL,
    overage numeric NOT NULL,
    balance_before numeric NOT NULL,
    balance_after numeric NOT NULL,
    counter_account text NOT NULL,
    reference text NOT NULL,
    sender_id text,
    conversation_id text,
    category text,
    units integer NOT NULL,
    unit_price numeric,
    actor text NOT NULL,
    occurred_at timestamptz NOT NULL,
    grants numeric NOT NULL DEFAULT 0
);
DO $migrate$ BEGIN
IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = '{name}'
               AND table_name = 'rm_ledger_entries' AND column_name = 'grants') THEN
ALTER TABLE {s}.rm_ledger_entries ADD COLUMN IF NOT EXISTS grants numeric NOT NULL DEFAULT 0;
END IF;
END $migrate$;
CREATE INDEX IF NOT EXISTS rm_ledger_entries_company
    ON {s}.rm_ledger_entries (company_id, position DESC);
CREATE TABLE IF NOT EXISTS {s}.rm_usage_daily (
    company_id text NOT NULL,
    sender_id text NOT NULL,
    category text NOT NULL,
    day date NOT NULL,
    billable_count bigint NOT NULL,
    failed_count bigint NOT NULL,
    units bigint NOT NULL,
    failed_units bigint NOT NULL,
    amount numeric NOT NULL,
    PRIMARY KEY (company_id, sender_id, category, day)
);
CREATE TABLE IF NOT EXISTS {s}.rm_topups (
    topup_id uuid PRIMARY KEY,
    company_id text NOT NULL,
    wallet_id uuid NOT NULL,
    amount numeric NOT NULL,
    currency text NOT NULL,
    note text NOT NULL,
    status text NOT NULL,
    invoice_number text,
    payment_reference text,
    reason text,
    requested_by text NOT NULL,
    approved_by text,
    paid_by text,
    rejected_by text,
    cancelled_by text,
    requested_at timestamptz NOT NULL,
    approved_at timestamptz,
    invoiced_at timestamptz,
    paid_at timestamptz,
    completed_at timestamptz,
    rejected_at timestamptz,
    cancelled_at timestamptz,
    updated_at timestamptz NOT NULL,
    created_position bigint NOT NULL,
    position bigint NOT NULL
);
DO $migrate$ BEGIN
IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = '{name}'
               AND table_name = 'rm_topups' AND column_name = 'bonus') THEN
ALTER TABLE {s}.rm_topups ADD COLUMN IF NOT EXISTS tax numeric NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS fee numeric NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS pack text,
    ADD COLUMN IF NOT EXISTS bonus numeric NOT NULL DEFAULT 0;
END IF;
END $migrate$;
-- Units of account came after: requests from before bought money.
ALTER TABLE {s}.rm_topups ADD COLUMN IF NOT EXISTS credit_unit text,
    ADD COLUMN IF NOT EXISTS credit_rate numeric,
    ADD COLUMN IF NOT EXISTS credits numeric;
-- The risk review came after: requests from before were never held.
ALTER TABLE {s}.rm_topups ADD COLUMN IF NOT EXISTS review_rules text[] NOT NULL DEFAULT '{{}}',
    ADD COLUMN IF NOT EXISTS released_by text,
    ADD COLUMN IF NOT EXISTS released_at timestamptz;
CREATE INDEX IF NOT EXISTS rm_topups_company ON {s}.rm_topups (company_id, created_position DESC);
CREATE INDEX IF NOT EXISTS rm_topups_status ON {s}.rm_topups (status, created_position DESC);
CREATE TABLE IF NOT EXISTS {s}.rm_payment_orders (
    payment_order_id uuid PRIMARY KEY,
    topup_id uuid NOT NULL,
    company_id text NOT NULL,
    provider text NOT NULL,
    status text NOT NULL,
    amount_total numeric NOT NULL,
    currency text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    position bigint NOT NULL,
    checkout_url text,
    failure_reason text
);
CREATE INDEX IF NOT EXISTS rm_payment_orders_topup ON {s}.rm_payment_orders (topup_id);
-- Transfers came after the other tables: on a database that had transfers before, the table
-- starts empty and `ledger replay --all` fills it.
CREATE TABLE IF NOT EXISTS {s}.rm_transfers (
    position bigint PRIMARY KEY,
    transfer_id uuid NOT NULL UNIQUE,
    from_company_id text NOT NULL,
    to_company_id text NOT NULL,
    currency text NOT NULL,
    amount numeric NOT NULL,
    commission numeric NOT NULL,
    net_amount numeric NOT NULL,
    note text NOT NULL,
    actor text NOT NULL,
    occurred_at timestamptz NOT NULL
);
-- Gifts came with tenant transfers (operators' transfers carry none).
ALTER TABLE {s}.rm_transfers ADD COLUMN IF NOT EXISTS gift_type text,
    ADD COLUMN IF NOT EXISTS message text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS rm_transfers_from ON {s}.rm_transfers (from_company_id, position DESC);
CREATE INDEX IF NOT EXISTS rm_transfers_to ON {s}.rm_transfers (to_company_id, position DESC);
CREATE TABLE IF NOT EXISTS {s}.rm_account_totals (
    account text PRIMARY KEY,
    total numeric NOT NULL,
    position bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.rm_projection_positions (
    name text PRIMARY KEY,
    position bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""


def check_schema(schema: str) -> str:
    """Schema names are interpolated into SQL, so only plain lower-case identifiers pass."""
    if not _SCHEMA_TEXT.fullmatch(schema):
        raise ValueError(f"read-model schema must be a plain lower-case identifier, got {schema!r}")
    return schema


@dataclass(frozen=True, slots=True)
class ReadModelTables:
    schema: str = DEFAULT_SCHEMA

    def __post_init__(self) -> None:
        check_schema(self.schema)

    def __getitem__(self, table: str) -> str:
        """The schema-qualified name of ``table`` (one of ``ALL_TABLES``)."""
        if table not in ALL_TABLES:
            raise KeyError(table)
        return f'"{self.schema}".{table}'
