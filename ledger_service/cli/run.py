"""The long-running parts of the service: ``run`` starts them all, ``serve``, ``consume``,
``project`` and ``react`` start one each, until Ctrl-C / SIGTERM."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import structlog
import typer

from ledger_service.api.app import ReadinessCheck, create_ops_app
from ledger_service.bootstrap import (
    Container,
    bootstrap,
    build_api,
    build_auto_topup,
    build_consumer,
    build_projector,
    build_relay,
    connector,
    prepare_read_models,
)
from ledger_service.cli.shared import load_settings
from ledger_service.gc_tuning import tune_garbage_collector
from ledger_service.ingestion.consumer import UsageConsumer
from ledger_service.ingestion.topics import ensure_topics
from ledger_service.reactions.cycles import schedule_cycles
from ledger_service.runner import (
    StopSignal,
    Worker,
    restarting,
    run_until_signalled,
    serve_http,
)
from projections.migrations import SchemaAhead, SchemaBehind
from projections.projector import follow_until_stopped
from projections.tables import ReadModelTables

log = structlog.get_logger(__name__)


def run() -> None:
    """Start the whole service - HTTP API, usage consumer and read-model projections - on its
    configured (or embedded) PostgreSQL and Kafka."""
    _run_parts(http=True, consume=True, projections=True, reactions=True)


def react() -> None:
    """Run the reactions only (alert notifications to Kafka, auto top-ups, billing cycles)."""
    _run_parts(reactions=True)


def serve() -> None:
    """Serve the HTTP API only, until Ctrl-C / SIGTERM."""
    _run_parts(http=True)


def consume() -> None:
    """Run the usage-event consumer only, until Ctrl-C / SIGTERM."""
    _run_parts(consume=True)


def project(
    once: bool = typer.Option(False, "--once", help="catch up with the event store and exit"),
) -> None:
    """Build the read models from the event store and keep following it (exactly once)."""
    if once:
        with bootstrap(load_settings()) as container:
            projector = build_projector(container)
            typer.echo(f"projected up to position {projector.catch_up()}")
            projector.close()
        return
    _run_parts(projections=True)


def _run_parts(
    *,
    http: bool = False,
    consume: bool = False,
    projections: bool = False,
    reactions: bool = False,
) -> None:
    settings = load_settings()
    tune_garbage_collector(settings.gc_gen0_threshold)
    with bootstrap(settings, with_broker=consume or reactions, wait_for_database=True) as container:
        if http or projections or reactions:  # the parts that read or write the read models
            _read_models_ready(container)
        workers: dict[str, Worker] = {}
        checks: dict[str, ReadinessCheck] = {}
        if consume:
            consumer, _ = build_consumer(container)
            workers["consumer"] = functools.partial(_consume, container, consumer)
            checks["ingestion"] = functools.partial(_consumer_ready, consumer)
        if reactions:
            workers |= _reaction_workers(container)
        if http:
            app = build_api(container, readiness_checks=checks)
            workers["http"] = functools.partial(
                serve_http, app, settings.http_host, settings.http_port
            )
            log.info(
                "console",
                url=f"{settings.public_url}/console",
                sign_in="ledger login-link --sub ops --scopes billing.manage",
            )
        elif settings.ops_port is not None:  # probes and metrics for the other roles
            ops = create_ops_app(container.ledger, readiness_checks=checks)
            workers["ops"] = functools.partial(
                serve_http, ops, settings.http_host, settings.ops_port
            )
        if projections:
            workers["projections"] = restarting(
                "projections",
                functools.partial(
                    follow_until_stopped,
                    build_projector(container),
                    poll_interval_s=settings.projection_poll_interval_ms / 1000,
                ),
            )
        with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
            runner.run(run_until_signalled(workers, shutdown_timeout_s=settings.shutdown_timeout_s))


def _read_models_ready(container: Container) -> None:
    """Migrated (where this process may) or of this release's version; else exit 1, saying
    why, before serving anything."""
    try:
        applied = prepare_read_models(container)
    except (SchemaBehind, SchemaAhead) as exc:
        log.error("read_models_version_refused", reason=str(exc))
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if applied:
        log.info("read_models_migrated", versions=applied)


def _reaction_workers(container: Container) -> dict[str, Worker]:
    """Notifications relay, auto top-up reactor and the billing-cycle scheduler."""
    settings = container.settings
    relay = build_relay(container)
    reactor = build_auto_topup(container)

    async def notify(stop: StopSignal) -> None:
        assert container.kafka_bootstrap is not None
        if settings.create_topics:
            await ensure_topics(
                container.kafka_bootstrap, {settings.notifications_topic: settings.topic_partitions}
            )
        await relay.run(stop)

    workers: dict[str, Worker] = {
        "notifications": notify,
        "auto_topup": reactor.run,
        "cycles": functools.partial(
            schedule_cycles,
            container.ledger,
            connector(container),
            ReadModelTables(settings.read_models_schema),
            interval_s=settings.cycle_check_interval_s,
        ),
    }
    # Followers only lag when they fail: restart them, never stop ingestion (see runner.py).
    return {name: restarting(name, worker) for name, worker in workers.items()}


async def _consumer_ready(consumer: UsageConsumer) -> None:
    if not consumer.ready:
        raise RuntimeError("the usage consumer cannot reach the broker or the event store")


async def _consume(container: Container, consumer: UsageConsumer, stop: StopSignal) -> None:
    settings = container.settings
    assert container.kafka_bootstrap is not None
    if settings.create_topics:
        await ensure_topics(
            container.kafka_bootstrap,
            {
                settings.usage_topic: settings.topic_partitions,
                settings.dlq_topic: settings.topic_partitions,
            },
        )
    if settings.kafka_bootstrap is None:
        # The embedded broker keeps nothing across restarts: its topics start empty, so the
        # positions recorded against their previous life mean nothing now.
        forgotten = consumer.ingestor.forget_positions(settings.usage_topic)
        log.info(
            "embedded_broker_positions_reset", topic=settings.usage_topic, partitions=forgotten
        )
    await consumer.run(stop)


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed: less CPU per request on the read path (see bench-api)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - not on Windows
        return None
    return uvloop.new_event_loop
