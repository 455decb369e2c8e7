"""What several command groups share: settings with logging configured, times taken as UTC, and
the address of the broker that tools talk to."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger_service.config import Settings
from ledger_service.logs import configure_logging


def load_settings() -> Settings:
    """Settings from the environment; commands log as configured there from the start."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return settings


def aware(moment: datetime) -> datetime:
    """A time without a zone is taken as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def aware_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else aware(moment)


def broker_address(settings: Settings) -> str:
    """Tools talk to the configured cluster, or to a running `ledger run`'s embedded broker."""
    return settings.kafka_bootstrap or f"127.0.0.1:{settings.embedded_kafka_port}"
