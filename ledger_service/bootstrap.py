"""The composition root: the only place that builds real infrastructure.

``bootstrap(settings)`` resolves the database (a configured URL or the embedded PostgreSQL),
configures the eventsourcing persistence environment and returns a ``Container`` holding the
application. Nothing connects at import time; ``Container.close()`` releases everything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from ledger_service.application import LedgerApplication
from ledger_service.config import Settings
from ledger_service.embedded import start_embedded_postgres


@dataclass
class Container:
    settings: Settings
    database_url: str
    ledger: LedgerApplication
    extras: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Release in reverse order of acquisition: the application, then the servers."""
        self.ledger.close()
        for close in reversed(self.closers):
            close()


def resolve_database_url(settings: Settings, closers: list[Callable[[], None]]) -> str:
    if settings.database_url:
        return settings.database_url
    url, stop = start_embedded_postgres(settings.data_dir)
    closers.append(stop)
    return url


def eventsourcing_env(settings: Settings, database_url: str) -> dict[str, str]:
    """Translate a ``postgresql://`` URL (TCP or Unix-socket form) into the library's env."""
    params = conninfo_to_dict(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": "ledger_service.store:LedgerRecorder",
        "POSTGRES_DBNAME": str(params.get("dbname") or "postgres"),
        "POSTGRES_HOST": str(params.get("host") or "127.0.0.1"),
        "POSTGRES_PORT": str(params.get("port") or "5432"),
        "POSTGRES_USER": str(params.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(params.get("password") or ""),
        "POSTGRES_POOL_SIZE": str(settings.db_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.db_pool_overflow_max),
        "POSTGRES_LOCK_TIMEOUT": str(settings.db_lock_timeout_s),
        # Never the DB-functions insert mode: it skips the table lock and ignores tracking.
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        "SINGLE_ROW_TRACKING": "y",
        "AGGREGATE_CACHE_MAXSIZE": str(settings.aggregate_cache_size_max),
        "AGGREGATE_CACHE_FASTFORWARD": "y",
        "CREATE_TABLE": "y",
    }


def bootstrap(settings: Settings | None = None, **overrides: Any) -> Container:
    """Build the service's object graph. ``overrides`` replace parts (tests pass fakes)."""
    settings = settings or Settings()
    closers: list[Callable[[], None]] = []
    database_url = overrides.pop("database_url", None) or resolve_database_url(settings, closers)
    ledger = overrides.pop("ledger", None) or build_ledger(settings, database_url)
    return Container(
        settings=settings,
        database_url=database_url,
        ledger=ledger,
        extras=overrides,
        closers=closers,
    )


def build_ledger(settings: Settings, database_url: str) -> LedgerApplication:
    ledger = LedgerApplication(env=eventsourcing_env(settings, database_url))
    ledger.retry_count_max = settings.command_retry_count_max
    return ledger
