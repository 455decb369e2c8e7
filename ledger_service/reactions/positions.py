"""Tracked positions of the log followers (notification relay, auto top-up).

Kept in the event store's database beside the events, in a table of their own: rebuilding the
read models (``ledger replay``) must not rewind them, or replay would re-send notifications.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

Connect = Callable[[], psycopg.Connection[Any]]
TABLE = "ledger_follower_positions"


class FollowerPositions:
    def __init__(self, connect: Connect) -> None:
        self.connect = connect

    def setup(self) -> None:
        with self.connect() as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (name text PRIMARY KEY, "
                "position bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
            )

    def get(self, name: str) -> int:
        with self.connect() as conn:
            row = conn.execute(f"SELECT position FROM {TABLE} WHERE name = %s", (name,)).fetchone()
        return int(row[0]) if row else 0

    def advance(self, name: str, position: int) -> None:
        """Move ``name`` forward to ``position`` (never backward)."""
        with self.connect() as conn:
            conn.execute(
                f"INSERT INTO {TABLE} (name, position) VALUES (%s, %s) ON CONFLICT (name) DO "
                f"UPDATE SET position = EXCLUDED.position, updated_at = now() "
                f"WHERE {TABLE}.position < EXCLUDED.position",
                (name, position),
            )
