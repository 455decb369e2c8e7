"""The composition root: the only place that builds real infrastructure.

``bootstrap(settings)`` resolves the database (a configured URL or the embedded PostgreSQL) and,
when asked, the Kafka cluster (a configured one or the embedded broker), configures the
eventsourcing persistence environment and returns a ``Container``. Nothing connects at import
time; ``Container.close()`` releases everything in reverse order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import asyncpg
import psycopg
import structlog
from fastapi import FastAPI
from psycopg.conninfo import conninfo_to_dict

from ledger_service.api.app import ReadinessCheck, ReadsOpener, create_app
from ledger_service.api.auth import JwtKeys
from ledger_service.api.routes.auto_open import WalletDefaults
from ledger_service.api.routes.dependencies import ApiState
from ledger_service.config import Settings
from ledger_service.console.app import create_console
from ledger_service.console.sign_in import ConsoleSigner
from ledger_service.domain.risk import RiskRules
from ledger_service.embedded import start_embedded_broker, start_embedded_postgres
from ledger_service.follow import DATABASE_UNAVAILABLE, FollowLoop, Recoverable, Wakeup
from ledger_service.ingestion.batch import UsageIngestor
from ledger_service.ingestion.consumer import UsageConsumer
from ledger_service.ingestion.dlq import DeadLetterDesk
from ledger_service.reactions import autotopup, notifications
from ledger_service.reactions.autotopup import AutoTopupReactor
from ledger_service.reactions.follower import LogFollower
from ledger_service.reactions.notifications import NotificationRelay
from ledger_service.reactions.positions import FollowerPositions
from ledger_service.service.ledger import LedgerApplication
from ledger_service.service.payments import MockPaymentProvider, PaymentProvider
from ledger_service.service.stripe_checkout import StripeCheckoutProvider
from ledger_service.store import LedgerRecorder
from projections import migrations
from projections.projector import Projector
from projections.queries import ReadModels
from projections.tables import ReadModelTables

log = structlog.get_logger(__name__)


@dataclass
class Container:
    settings: Settings
    database_url: str
    ledger: LedgerApplication
    kafka_bootstrap: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Release in reverse order of acquisition: the application, then the servers."""
        self.ledger.close()
        for close in reversed(self.closers):
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close on the way out whether the block raised or not; never swallow its exception."""
        self.close()


def resolve_database_url(settings: Settings, closers: list[Callable[[], None]]) -> str:
    if settings.database_url:
        return settings.database_url
    url, stop = start_embedded_postgres(settings.data_dir)
    closers.append(stop)
    return url


STARTUP_RETRY_S = 1.0


def database_reachable(
    database_url: str,
    wait_s: float,
    *,
    connect: Callable[[str], object] = lambda url: psycopg.connect(url, connect_timeout=2).close(),
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once PostgreSQL accepts a connection; retry for up to ``wait_s`` (saying so in
    the log), then raise the last error. Roles started together with their database (compose,
    a Kubernetes rollout) would otherwise exit 1 and wait for their supervisor's back-off."""
    deadline = time.monotonic() + wait_s
    attempt = 0
    while True:
        attempt += 1
        try:
            connect(database_url)
        except psycopg.OperationalError as exc:
            if time.monotonic() >= deadline:
                log.error("database_unreachable", attempts=attempt, waited_s=wait_s)
                raise
            log.warning("waiting_for_database", attempt=attempt, error=str(exc).strip()[:200])
            sleep(STARTUP_RETRY_S)
            continue
        if attempt > 1:
            log.info("database_reachable", attempts=attempt)
        return


def resolve_kafka_bootstrap(settings: Settings, closers: list[Callable[[], None]]) -> str:
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    address, stop = start_embedded_broker(settings.embedded_kafka_port)
    closers.append(stop)
    return address


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
        "POSTGRES_CONNECT_TIMEOUT": str(settings.db_connect_timeout_s),
        # Never the DB-functions insert mode: it skips the table lock and ignores tracking.
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        "SINGLE_ROW_TRACKING": "y",
        "AGGREGATE_CACHE_MAXSIZE": str(settings.aggregate_cache_size_max),
        "AGGREGATE_CACHE_FASTFORWARD": "y",
        # The event store's DDL runs where the read models' migrations may (``ledger migrate``,
        # or a process allowed to migrate on start): never in a fleet of production pods
        # starting at once, whose concurrent ALTERs fail each other.
        "CREATE_TABLE": "y" if settings.migrates_on_start else "n",
    }


def bootstrap(
    settings: Settings | None = None,
    *,
    with_broker: bool = False,
    wait_for_database: bool = False,
    **overrides: Any,
) -> Container:
    """Build the service's object graph. ``overrides`` replace parts (tests pass fakes).
    ``wait_for_database``: a long-running role waits up to ``startup_wait_s`` for PostgreSQL
    (a one-shot command fails at once instead)."""
    settings = settings or Settings()
    closers: list[Callable[[], None]] = []
    try:
        database_url = overrides.pop("database_url", None) or resolve_database_url(
            settings, closers
        )
        if wait_for_database:
            database_reachable(database_url, settings.startup_wait_s)
        kafka = resolve_kafka_bootstrap(settings, closers) if with_broker else None
        ledger = overrides.pop("ledger", None) or build_ledger(settings, database_url)
    except BaseException:
        for close in reversed(closers):
            close()
        raise
    return Container(
        settings=settings,
        database_url=database_url,
        ledger=ledger,
        kafka_bootstrap=kafka,
        extras=overrides,
        closers=closers,
    )


def build_ledger(
    settings: Settings, database_url: str, *, for_ingestion: bool = False
) -> LedgerApplication:
    env = eventsourcing_env(settings, database_url)
    if for_ingestion:
        # The consumer is the only usage writer of its partitions' wallets: keep them cached
        # without re-reading per batch; a concurrent API write fails the save (optimistic
        # concurrency) and the batch is re-planned from fresh aggregates.
        env |= {
            "AGGREGATE_CACHE_FASTFORWARD": "n",
            "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
            "AGGREGATE_CACHE_MAXSIZE": str(max(settings.aggregate_cache_size_max, 100_000)),
        }
    ledger = LedgerApplication(env=env)
    ledger.retry_count_max = settings.command_retry_count_max
    ledger.adjustment_approval_threshold = settings.adjustment_approval_threshold
    ledger.topup_tax_percent = settings.topup_tax_percent
    ledger.topup_fee_percent = settings.topup_fee_percent
    ledger.topup_minimums = dict(settings.topup_minimums)
    ledger.credit_rates = settings.credit_rates
    ledger.risk_rules = RiskRules(
        amount_max=dict(settings.risk_topup_amount_max),
        requests_per_day_max=settings.risk_topups_per_day_max,
        company_age_min_days=settings.risk_company_age_min_days,
    )
    ledger.transfer_commission_rate = settings.transfer_commission_rate
    ledger.transfer_agency_company_id = settings.transfer_agency_company
    ledger.payment_provider = payment_provider(settings)
    return ledger


def payment_provider(settings: Settings) -> PaymentProvider | None:
    """Who opens card checkouts (``LEDGER_PAYMENTS_PROVIDER``); None: no card payments."""
    if settings.payments_provider == "mock":
        return MockPaymentProvider(settings.public_url)
    if settings.payments_provider == "stripe":
        assert settings.payments_stripe_api_key  # checked by Settings
        assert settings.payments_success_url
        assert settings.payments_cancel_url
        return StripeCheckoutProvider(
            settings.payments_stripe_api_key,
            success_url=settings.payments_success_url,
            cancel_url=settings.payments_cancel_url,
            api_base=settings.payments_stripe_api_base,
        )
    return None


def build_consumer(container: Container, **options: Any) -> tuple[UsageConsumer, LedgerApplication]:
    """The usage consumer with its own (ingestion-tuned) application instance."""
    settings = container.settings
    if container.kafka_bootstrap is None:
        raise RuntimeError("build_consumer needs bootstrap(..., with_broker=True)")
    ledger = build_ledger(settings, container.database_url, for_ingestion=True)
    container.closers.append(ledger.close)
    consumer: UsageConsumer
    ingestor = UsageIngestor(
        ledger,
        # Late binding: the consumer that publishes dead letters is built just below.
        dead_letter=lambda dead_letter: consumer.publish_dead_letter(dead_letter),  # noqa: PLW0108
        trust_producer_price=settings.trust_producer_price,
        refund_failed_usage=settings.refund_failed_usage,
        retry_count_max=settings.ingestion_retry_count_max,
    )
    consumer = UsageConsumer(
        ingestor,
        bootstrap=container.kafka_bootstrap,
        topic=settings.usage_topic,
        dlq_topic=settings.dlq_topic,
        group_id=settings.consumer_group,
        batch_size_max=settings.batch_size_max,
        poll_timeout_ms=settings.poll_timeout_ms,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        backoff_max_s=settings.unavailable_backoff_max_s,
        stall_s=settings.ingestion_stall_s,
        concurrency=settings.ingestion_concurrency,
        **options,
    )
    return consumer, ledger


# -- reactions ------------------------------------------------------------------------------


def build_follower(container: Container, name: str, topics: tuple[str, ...]) -> LogFollower:
    url = container.database_url
    positions = FollowerPositions(lambda: psycopg.connect(url))
    positions.setup()
    return LogFollower(
        name=name,
        source=container.ledger.recorder,
        mapper=container.ledger.mapper,
        positions=positions,
        topics=topics,
        batch_size_max=container.settings.reactions_batch_size_max,
    )


def build_follow_loop(
    container: Container, name: str, recoverable: Recoverable = DATABASE_UNAVAILABLE
) -> FollowLoop:
    """A follower's loop, woken by the event store's NOTIFY on the container's database."""
    url, settings = container.database_url, container.settings
    recorder = container.ledger.recorder
    assert isinstance(recorder, LedgerRecorder)  # APPLICATION_RECORDER_TOPIC above
    return FollowLoop(
        name,
        Wakeup(lambda: psycopg.AsyncConnection.connect(url), recorder.channel_name),
        poll_interval_s=settings.reactions_poll_interval_ms / 1000,
        backoff_max_s=settings.unavailable_backoff_max_s,
        recoverable=recoverable,
    )


def build_relay(container: Container) -> NotificationRelay:
    """Alerts and top-up steps to Kafka; needs ``bootstrap(..., with_broker=True)``."""
    if container.kafka_bootstrap is None:
        raise RuntimeError("build_relay needs bootstrap(..., with_broker=True)")
    name = notifications.RELAY_NAME
    return NotificationRelay(
        build_follower(container, name, notifications.TOPICS),
        bootstrap=container.kafka_bootstrap,
        topic=container.settings.notifications_topic,
        loop=build_follow_loop(container, name, notifications.RECOVERABLE),
        topup_as_of=container.ledger.topup_as_of,
    )


def build_auto_topup(container: Container) -> AutoTopupReactor:
    name = autotopup.REACTOR_NAME
    return AutoTopupReactor(
        container.ledger,
        build_follower(container, name, autotopup.TOPICS),
        build_follow_loop(container, name),
    )


def connector(container: Container) -> Callable[[], psycopg.Connection[Any]]:
    url = container.database_url
    return lambda: psycopg.connect(url)


# -- read side ------------------------------------------------------------------------------


def prepare_read_models(container: Container) -> list[int]:
    """Bring the read models to this release's version when the settings let a process migrate
    (the versions applied), else check them (raises ``SchemaBehind``/``SchemaAhead``)."""
    tables = ReadModelTables(container.settings.read_models_schema)
    with psycopg.connect(container.database_url) as conn:
        if container.settings.migrates_on_start:
            return [m.version for m in migrations.migrate(conn, tables)]
        migrations.check(conn, tables)
    return []


def build_projector(container: Container, **overrides: Any) -> Projector:
    """The read-model projection on the container's database, its tables at this release's
    version: migrated when the settings say a process may (``migrates_on_start``), else
    checked (``SchemaBehind``/``SchemaAhead`` when they are not)."""
    settings, url = container.settings, container.database_url
    projector = Projector(
        lambda: psycopg.connect(url),
        container.ledger.recorder,  # type: ignore[arg-type]
        container.ledger.mapper,
        tables=ReadModelTables(settings.read_models_schema),
        batch_size_max=settings.projection_batch_size_max,
        listen=lambda: psycopg.AsyncConnection.connect(url),
        **overrides,
    )
    projector.setup(migrate=settings.migrates_on_start)
    return projector


def read_models_opener(settings: Settings, database_url: str) -> ReadsOpener:
    """Opens the API's asyncpg pool when called (inside the serving event loop)."""

    async def open_reads() -> tuple[ReadModels, Callable[[], Any]]:
        pool = await asyncpg.create_pool(
            min_size=settings.read_pool_size_max,
            max_size=settings.read_pool_size_max,
            **asyncpg_params(database_url),
        )
        return ReadModels(pool, ReadModelTables(settings.read_models_schema)), pool.close

    return open_reads


def asyncpg_params(database_url: str) -> dict[str, Any]:
    """asyncpg's connection arguments for a URL or key=value conninfo (TCP or Unix socket)."""
    params = conninfo_to_dict(database_url)
    return {
        "host": params.get("host") or "127.0.0.1",
        "port": int(params.get("port") or 5432),
        "user": params.get("user") or "postgres",
        "password": params.get("password") or None,
        "database": params.get("dbname") or "postgres",
    }


def build_api(
    container: Container, readiness_checks: dict[str, ReadinessCheck] | None = None
) -> FastAPI:
    """The HTTP API; the read-model tables are created first so reads never race DDL."""
    settings = container.settings
    build_projector(container).close()
    app = create_app(
        container.ledger,
        jwt_keys=jwt_keys(settings),
        body_max_bytes=settings.http_body_max_bytes,
        open_reads=read_models_opener(settings, container.database_url),
        read_wait_timeout_s=settings.read_wait_timeout_ms / 1000,
        projection_lag_events_max=settings.readyz_projection_lag_events_max,
        readiness_checks=readiness_checks,
        hold_group_window_s=settings.hold_group_window_ms / 1000,
        webhook_secrets=webhook_secrets(settings),
        aggregate_timeout_s=settings.aggregate_read_timeout_ms / 1000,
        wallet_defaults=WalletDefaults(
            currency=settings.auto_open_currency,
            postpaid_limit=settings.auto_open_postpaid_limit,
            included_quota=settings.auto_open_included_quota,
            rate_card=dict(settings.auto_open_rate_card),
        )
        if settings.auto_open_wallets
        else None,
    )
    app.mount("/console", build_console(container, app.state.api))
    return app


def jwt_keys(settings: Settings) -> JwtKeys:
    """The keys, issuer and audience bearer tokens are signed and checked with."""
    return JwtKeys(
        settings.jwt_secret, settings.jwt_key_id, dict(settings.jwt_previous_secrets),
        settings.jwt_issuer, settings.jwt_audience,
    )  # fmt: skip


def build_console(container: Container, api: ApiState) -> FastAPI:
    """The web console, sharing the API's state; its cookies are Secure outside development
    unless ``console_cookie_secure`` says otherwise. Its dead-letter page needs the broker."""
    settings = container.settings
    secure = settings.console_cookie_secure
    desk = None
    if container.kafka_bootstrap is not None:
        desk = DeadLetterDesk(
            container.kafka_bootstrap,
            dlq_topic=settings.dlq_topic,
            usage_topic=settings.usage_topic,
        )
    return create_console(
        api,
        ConsoleSigner(
            settings.console_signing_secret, session_ttl_s=settings.console_session_ttl_s
        ),
        cookie_secure=settings.environment != "development" if secure is None else secure,
        dead_letters=desk,
    )


def webhook_secrets(settings: Settings) -> dict[str, str]:
    """The payment providers whose signed webhooks the API accepts, with their secrets."""
    secrets = {}
    if settings.payments_stripe_webhook_secret:
        secrets["stripe"] = settings.payments_stripe_webhook_secret
    if settings.payments_provider == "mock":
        secrets["mock"] = settings.payments_mock_webhook_secret
    return secrets
