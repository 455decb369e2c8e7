"""Settings, from ``LEDGER_*`` environment variables (pydantic-settings).

With nothing set, the service runs on its embedded defaults: an embedded PostgreSQL under
``data_dir`` and (once ingestion lands) an embedded Kafka-protocol broker. Validators refuse
settings that are only safe on a developer machine when ``environment`` is not development.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger_service.domain.credits import check_credit_rates
from ledger_service.domain.errors import LedgerError

DEVELOPMENT_JWT_SECRET = "development-only-secret-change-me"  # noqa: S105 - refused in prod
DEVELOPMENT_MOCK_WEBHOOK_SECRET = "whsec_mock_development_only"  # noqa: S105 - mock only


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str | None = Field(
        default=None,
        description="postgresql:// URL of the event store; unset = embedded PostgreSQL",
    )
    migrate_on_start: bool | None = Field(
        default=None,
        description="a process brings the read models to its version when it starts (unset: "
        "outside production); else it refuses to start against another version, and "
        "`ledger migrate` runs first",
    )
    data_dir: Path = Path(".ledger-data")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    http_body_max_bytes: int = Field(
        default=1_048_576, ge=1024, le=64 * 1_048_576,
        description="request bodies above this are refused with 413 PAYLOAD_TOO_LARGE",
    )  # fmt: skip
    ops_port: int | None = Field(
        default=None, ge=1, le=65535,
        description="where consume, project and react serve /healthz, /readyz and /metrics "
        "(unset: they serve nothing; the API's port serves them for serve and run)",
    )  # fmt: skip
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool | None = Field(default=None, description="unset = JSON unless on a TTY")
    db_pool_size: int = Field(default=8, ge=1, le=200)
    db_pool_overflow_max: int = Field(default=8, ge=0, le=200)
    db_lock_timeout_s: int = Field(default=5, ge=0, le=600)
    aggregate_cache_size_max: int = Field(default=10_000, ge=0)
    command_retry_count_max: int = Field(default=8, ge=0, le=100)
    jwt_secret: str = DEVELOPMENT_JWT_SECRET
    # -- read side (projections and the HTTP API) ------------------------------------------
    jwt_key_id: str | None = Field(
        default=None, max_length=64,
        description="the kid header of tokens signed with LEDGER_JWT_SECRET (key rotation)",
    )  # fmt: skip
    jwt_previous_secrets: dict[str, str] = Field(
        default_factory=dict,
        description="earlier secrets by key id, still accepted (never used to sign), JSON: "
        '{"2026-10": "..."}; while LEDGER_JWT_SECRET is rotated, both keys are valid',
    )
    jwt_issuer: str | None = Field(
        default=None, description="when set, every token must carry this iss (and is minted so)"
    )
    jwt_audience: str | None = Field(
        default=None, description="when set, every token must carry this aud (and is minted so)"
    )
    read_models_schema: str = Field(
        default="public", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="schema of rm_* tables"
    )
    projection_batch_size_max: int = Field(default=2000, ge=1, le=100_000)
    projection_poll_interval_ms: int = Field(default=500, ge=10, le=60_000)
    read_pool_size_max: int = Field(default=10, ge=1, le=200)
    read_wait_timeout_ms: int = Field(
        default=2000, ge=0, le=30_000, description="how long a read waits for min_position"
    )
    readyz_projection_lag_events_max: int = Field(default=100_000, ge=0)
    auto_open_wallets: bool = Field(
        default=False,
        description="a tenant's first balance read or top-up request opens its company's "
        "wallet with the auto_open_* values (off: an unknown company is 404)",
    )
    auto_open_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    auto_open_postpaid_limit: Decimal = Field(default=Decimal(0), ge=0)
    auto_open_included_quota: Decimal = Field(default=Decimal(0), ge=0)
    auto_open_rate_card: dict[str, Decimal] = Field(
        default_factory=dict, description='JSON, category -> unit price: {"marketing": "0.05"}'
    )
    aggregate_read_timeout_ms: int = Field(
        default=500, ge=1, le=30_000,
        description="time budget of a read summing several pools (a company's balance); "
        "slower: the last figures read, marked stale",
    )  # fmt: skip
    hold_group_window_ms: float = Field(
        default=2.0,
        ge=0,
        le=100,
        description="hold requests arriving within this window are saved together; 0: one by one",
    )
    jwt_ttl_s: int = Field(default=3600, ge=60, le=30 * 86400, description="ledger token")
    adjustment_approval_threshold: Decimal = Field(
        default=Decimal(0),
        ge=0,
        max_digits=18,
        decimal_places=6,
        description="adjustments above this amount wait for a second operator (0: all of them)",
    )

    # -- top-up invoices -------------------------------------------------------------------
    topup_tax_percent: Decimal = Field(
        default=Decimal(0), ge=0, le=100, max_digits=9, decimal_places=4,
        description="tax on a top-up's amount, in percent (e.g. 18 for GST), added to its invoice",
    )  # fmt: skip
    topup_fee_percent: Decimal = Field(
        default=Decimal(0), ge=0, le=100, max_digits=9, decimal_places=4,
        description="platform fee on a top-up's amount, in percent (e.g. 2.4)",
    )  # fmt: skip
    topup_minimums: dict[str, Decimal] = Field(
        default_factory=dict,
        description='smallest top-up per currency, JSON: {"USD": "10", "INR": "500"}',
    )

    credit_rates: dict[str, dict[str, Decimal]] = Field(
        default_factory=dict,
        description="units of account and what one unit of a currency buys of each, JSON: "
        '{"CREDIT": {"INR": "10", "USD": "800"}} (10 INR = 100 credits); a wallet may be '
        "kept in such a unit, its top-ups invoiced in money",
    )

    # -- risk review of top-up requests ------------------------------------------------------
    risk_topup_amount_max: dict[str, Decimal] = Field(
        default_factory=dict,
        description="hold for review a top-up above this amount, per currency, JSON: "
        '{"USD": "5000"}',
    )
    risk_topups_per_day_max: int | None = Field(
        default=None, ge=1,
        description="hold for review a company's top-up requests beyond this many in 24 hours",
    )  # fmt: skip
    risk_company_age_min_days: int | None = Field(
        default=None, ge=1,
        description="hold for review the top-ups of a company whose wallet is younger than this",
    )  # fmt: skip

    # -- tenant transfers (gifts) -----------------------------------------------------------
    transfer_commission_rate: Decimal = Field(
        default=Decimal(0), ge=0, lt=1, max_digits=9, decimal_places=6,
        description="commission on a tenant's transfer, as a fraction (0.05: 5%), kept from "
        "what the receiver gets",
    )  # fmt: skip
    transfer_agency_company: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
        description="the company whose wallet is paid the commission of tenant transfers "
        "(unset: it stays in the commissions account)",
    )

    # -- payments (card top-ups) -----------------------------------------------------------
    payments_provider: Literal["mock", "stripe", "none"] = Field(
        default="mock",
        description="who collects card top-ups: the built-in mock checkout (development and "
        "tests; refused in production), Stripe Checkout, or none (invoice top-ups only)",
    )
    payments_stripe_api_key: str | None = Field(
        default=None, description="Stripe secret key (sk_...), needed with provider stripe"
    )
    payments_stripe_api_base: str | None = Field(
        default=None, description="Stripe's API address; unset: https://api.stripe.com"
    )
    payments_success_url: str | None = Field(
        default=None, description="where Stripe Checkout sends the payer after paying"
    )
    payments_cancel_url: str | None = Field(
        default=None, description="where Stripe Checkout sends a payer who gives up"
    )
    payments_public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/\s]+$",
        description="scheme://host[:port] the payer's browser reaches this service at; "
        "unset: http://{http_host}:{http_port}",
    )
    payments_stripe_webhook_secret: str | None = Field(
        default=None, description="Stripe's endpoint secret (whsec_...); unset: webhook off"
    )
    payments_mock_webhook_secret: str = DEVELOPMENT_MOCK_WEBHOOK_SECRET

    # -- console (/console) ---------------------------------------------------------------
    console_session_ttl_s: int = Field(
        default=8 * 3600, ge=60, le=7 * 86400, description="a console sign-in lasts this long"
    )
    console_login_link_ttl_s: int = Field(
        default=15 * 60, ge=10, le=86400, description="default lifetime of a login link"
    )
    console_secret: str | None = Field(
        default=None,
        description="signs console login links and sessions; unset: LEDGER_JWT_SECRET. Change "
        "it to sign every console user out without touching API tokens",
    )
    console_cookie_secure: bool | None = Field(
        default=None,
        description="mark the console's session cookie Secure (HTTPS only); unset: outside "
        "development",
    )

    # -- Kafka ingestion ------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        default=None, description="host:port[,host:port]; unset = embedded Tansu broker"
    )
    embedded_kafka_port: int = Field(default=19092, ge=1, le=65535)
    usage_topic: str = "ledger.usage.v1"
    dlq_topic: str = "ledger.usage.dlq.v1"
    consumer_group: str = "ledger-ingestion"
    topic_partitions: int = Field(default=6, ge=1, le=1000)
    create_topics: bool = Field(default=True, description="create missing topics at start")
    batch_size_max: int = Field(default=1000, ge=1, le=50_000)
    poll_timeout_ms: int = Field(default=200, ge=1, le=60_000)
    fetch_max_wait_ms: int = Field(
        default=50,
        ge=1,
        le=60_000,
        description="longest a fetch waits at the broker for new records: the embedded broker "
        "answers a waiting fetch only when this expires, so it bounds ingestion latency "
        "(Kafka's default of 500 ms put the p99 at 2,000 events/s near 300 ms)",
    )
    ingestion_retry_count_max: int = Field(default=3, ge=0, le=100)
    ingestion_concurrency: int = Field(
        default=2,
        ge=1,
        le=16,
        description="partition batches applied at the same time (each its own transaction; "
        "one plans while another is written; the next poll's start while a poll's last one is)",
    )
    trust_producer_price: bool = Field(
        default=False, description="apply data.unit_price even when the rate card disagrees"
    )
    refund_failed_usage: bool = Field(
        default=True,
        description="a usage event reported failed after it was billed refunds its charge",
    )
    unavailable_backoff_max_s: float = Field(default=5.0, gt=0, le=300)
    ingestion_stall_s: float = Field(
        default=5.0, gt=0, le=600, description="a batch slower than this reports not-ready"
    )
    db_connect_timeout_s: int = Field(default=5, ge=1, le=300)

    # -- reactions: notifications, auto top-up, billing cycles ------------------------------
    notifications_topic: str = "ledger.notifications.v1"
    reactions_poll_interval_ms: int = Field(default=500, ge=10, le=60_000)
    reactions_batch_size_max: int = Field(default=500, ge=1, le=10_000)
    gc_gen0_threshold: int = Field(
        default=50_000, ge=0, le=10_000_000,
        description="net allocations between young garbage collections in run, serve, consume, "
        "project and react (Python's default 700 made collections the p99 of holds); 0 keeps "
        "Python's default",
    )  # fmt: skip
    startup_wait_s: float = Field(
        default=60.0, ge=0, le=3_600,
        description="how long run, serve, consume, project and react wait at start for "
        "PostgreSQL to accept connections (a pod started before its database); then exit 1",
    )  # fmt: skip
    shutdown_timeout_s: float = Field(
        default=20.0, gt=0, le=600,
        description="after SIGTERM, how long the parts get to finish (then cancelled, exit 1)",
    )  # fmt: skip
    cycle_check_interval_s: float = Field(
        default=60.0, gt=0, le=86_400, description="how often due billing cycles are started"
    )

    @model_validator(mode="after")
    def _stripe_needs_its_settings(self) -> Settings:
        if self.payments_provider == "stripe":
            missing = [
                name
                for name in ("payments_stripe_api_key", "payments_success_url",
                             "payments_cancel_url", "payments_stripe_webhook_secret")
                if not getattr(self, name)
            ]  # fmt: skip
            if missing:
                names = ", ".join(f"LEDGER_{m.upper()}" for m in missing)
                raise ValueError(f"LEDGER_PAYMENTS_PROVIDER=stripe needs {names}")
        return self

    @model_validator(mode="after")
    def _credit_rates_are_rates(self) -> Settings:
        try:
            self.credit_rates = check_credit_rates(self.credit_rates)
        except LedgerError as exc:
            raise ValueError(f"LEDGER_CREDIT_RATES: {exc.message}") from None
        return self

    @property
    def migrates_on_start(self) -> bool:
        if self.migrate_on_start is None:
            return self.environment != "production"
        return self.migrate_on_start

    @property
    def console_signing_secret(self) -> str:
        return self.console_secret or self.jwt_secret

    @property
    def public_url(self) -> str:
        return self.payments_public_url or f"http://{self.http_host}:{self.http_port}"

    @model_validator(mode="after")
    def _refuse_unsafe_outside_development(self) -> Settings:
        if self.environment == "production":
            if self.jwt_secret == DEVELOPMENT_JWT_SECRET or len(self.jwt_secret) < 32:
                raise ValueError("LEDGER_JWT_SECRET must be set (32+ characters) in production")
            if self.console_secret is not None and len(self.console_secret) < 32:
                raise ValueError("LEDGER_CONSOLE_SECRET must be 32+ characters in production")
            if self.database_url is None:
                raise ValueError(
                    "LEDGER_DATABASE_URL must be set in production "
                    "(the embedded PostgreSQL is for development)"
                )
            if self.payments_provider == "mock":
                raise ValueError(
                    "LEDGER_PAYMENTS_PROVIDER=mock takes card payments nobody made: set it to "
                    "none in production"
                )
        return self
