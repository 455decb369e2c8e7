"""The ``ledger`` command: the single entry point of the service and its tools."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import psycopg
import structlog
import typer

from ledger_service.api.app import ReadinessCheck
from ledger_service.api.auth import mint_token
from ledger_service.audit.verify import ReadModelSnapshot
from ledger_service.bootstrap import (
    Container,
    bootstrap,
    build_api,
    build_auto_topup,
    build_consumer,
    build_projector,
    build_relay,
    connector,
)
from ledger_service.config import Settings
from ledger_service.domain.errors import LedgerError
from ledger_service.ingestion.consumer import UsageConsumer
from ledger_service.ingestion.dlq import replay_dead_letters
from ledger_service.ingestion.sample import SampleShape, publish, sample_events, setup_wallets
from ledger_service.ingestion.topics import ensure_topics
from ledger_service.logs import configure_logging
from ledger_service.reactions.cycles import run_cycles, schedule_cycles
from ledger_service.runner import StopSignal, Worker, run_until_signalled, serve_http
from projections.projector import follow_until_stopped
from projections.tables import ReadModelTables

log = structlog.get_logger(__name__)
cli = typer.Typer(help="Event-sourced prepaid-wallet ledger.", no_args_is_help=True)
dlq_cli = typer.Typer(help="Dead-lettered usage events.", no_args_is_help=True)
cli.add_typer(dlq_cli, name="dlq")
cycles_cli = typer.Typer(help="Billing cycles.", no_args_is_help=True)
cli.add_typer(cycles_cli, name="cycles")


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return settings


@cli.command()
def run() -> None:
    """Start the whole service - HTTP API, usage consumer and read-model projections - on its
    configured (or embedded) PostgreSQL and Kafka."""
    _run_parts(http=True, consume=True, projections=True, reactions=True)


@cli.command()
def react() -> None:
    """Run the reactions only (alert notifications to Kafka, auto top-ups, billing cycles)."""
    _run_parts(reactions=True)


@cycles_cli.command("run")
def cycles_run(
    at: datetime | None = typer.Option(
        None, "--at", help="start the cycles due at this time (ISO 8601; default: now)"
    ),
) -> None:
    """Start every wallet's billing cycles that are due: unused included quota expires and the
    new quota is granted, exactly once per wallet per cycle; missed cycles are caught up."""
    settings = _settings()
    container = bootstrap(settings)
    now = datetime.now(UTC) if at is None else _aware(at)
    try:
        # The due list comes from the wallet read model: bring it up to date first.
        projector = build_projector(container)
        projector.catch_up()
        projector.close()
        tables = ReadModelTables(settings.read_models_schema)
        wallets, started = run_cycles(container.ledger, connector(container), tables, now)
    finally:
        container.close()
    typer.echo(f"{started} cycles started across {wallets} wallets due at {now.isoformat()}")


@contextlib.contextmanager
def _refusals_as_exit() -> Iterator[None]:
    """A refusal (unknown company, conflicting options) is one line and exit status 1, not a
    traceback."""
    try:
        yield
    except LedgerError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(1) from None


def _aware(moment: datetime) -> datetime:
    """A time without a zone is taken as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _aware_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else _aware(moment)


@cli.command()
def serve() -> None:
    """Serve the HTTP API only, until Ctrl-C / SIGTERM."""
    _run_parts(http=True)


@cli.command()
def consume() -> None:
    """Run the usage-event consumer only, until Ctrl-C / SIGTERM."""
    _run_parts(consume=True)


@cli.command()
def project(
    once: bool = typer.Option(False, "--once", help="catch up with the event store and exit"),
) -> None:
    """Build the read models from the event store and keep following it (exactly once)."""
    if once:
        settings = _settings()
        container = bootstrap(settings)
        try:
            projector = build_projector(container)
            typer.echo(f"projected up to position {projector.catch_up()}")
            projector.close()
        finally:
            container.close()
        return
    _run_parts(projections=True)


@cli.command()
def token(
    company: str = typer.Option(None, "--company", help="company_id claim (tenants)"),
    scopes: str = typer.Option("billing.view", "--scopes", help="comma/space-separated"),
    subject: str = typer.Option("dev", "--sub", help="sub claim: who is calling"),
    ttl_s: int = typer.Option(None, "--ttl-s", help="lifetime; default LEDGER_JWT_TTL_S"),
) -> None:
    """Mint a bearer token (HS256, signed with LEDGER_JWT_SECRET) for development."""
    settings = Settings()
    scope_list = [s for s in scopes.replace(",", " ").split() if s]
    typer.echo(
        mint_token(
            settings.jwt_secret,
            subject=subject,
            company_id=company,
            scopes=scope_list,
            ttl_s=ttl_s or settings.jwt_ttl_s,
        )
    )


def _run_parts(
    *,
    http: bool = False,
    consume: bool = False,
    projections: bool = False,
    reactions: bool = False,
) -> None:
    settings = _settings()
    container = bootstrap(settings, with_broker=consume or reactions)
    workers: dict[str, Worker] = {}
    try:
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
        if projections:
            workers["projections"] = functools.partial(
                follow_until_stopped,
                build_projector(container),
                poll_interval_s=settings.projection_poll_interval_ms / 1000,
            )
        with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
            runner.run(run_until_signalled(workers))
    finally:
        container.close()


def _reaction_workers(container: Container) -> dict[str, Worker]:
    """Notifications relay, auto top-up reactor and the billing-cycle scheduler."""
    settings = container.settings
    relay = build_relay(container)
    reactor = build_auto_topup(container)
    poll_s = settings.reactions_poll_interval_ms / 1000

    async def notify(stop: StopSignal) -> None:
        assert container.kafka_bootstrap is not None
        if settings.create_topics:
            await ensure_topics(
                container.kafka_bootstrap, {settings.notifications_topic: settings.topic_partitions}
            )
        await relay.run(stop)

    return {
        "notifications": notify,
        "auto_topup": functools.partial(reactor.run, poll_interval_s=poll_s),
        "cycles": functools.partial(
            schedule_cycles,
            container.ledger,
            connector(container),
            ReadModelTables(settings.read_models_schema),
            interval_s=settings.cycle_check_interval_s,
        ),
    }


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


def _broker_address(settings: Settings) -> str:
    """Tools talk to the configured cluster, or to a running `ledger run`'s embedded broker."""
    return settings.kafka_bootstrap or f"127.0.0.1:{settings.embedded_kafka_port}"


@cli.command("publish-sample")
def publish_sample(
    companies: int = typer.Option(10, min=1, help="distinct companies"),
    senders_per_company: int = typer.Option(3, min=1, help="senders (WABAs) per company"),
    events: int = typer.Option(1000, min=0, help="events to publish"),
    duplicates_pct: float = typer.Option(
        0.0, min=0, max=100, help="percent of events re-sent verbatim"
    ),
    rate: float = typer.Option(0.0, min=0, help="events per second; 0 = as fast as possible"),
    setup: bool = typer.Option(True, help="open the sample wallets and link their senders"),
    seed: int | None = typer.Option(None, help="random seed for a repeatable stream"),
) -> None:
    """Publish realistic usage events (CloudEvents) to the usage topic."""
    settings = _settings()
    shape = SampleShape(companies, senders_per_company)
    if setup:
        container = bootstrap(settings)
        try:
            setup_wallets(container.ledger, shape)
        finally:
            container.close()
    stream = sample_events(shape, events, duplicates_pct=duplicates_pct, seed=seed)
    sent = asyncio.run(
        publish(_broker_address(settings), settings.usage_topic, stream, rate_per_s=rate or None)
    )
    typer.echo(
        f"published {sent} events to {settings.usage_topic} "
        f"({companies} companies x {senders_per_company} senders)"
    )


@dlq_cli.command("replay")
def dlq_replay(
    code: str | None = typer.Option(None, help="only dead letters with this error code"),
    limit: int | None = typer.Option(None, min=1, help="at most this many"),
) -> None:
    """Re-publish dead letters to the usage topic (after their cause was fixed)."""
    settings = _settings()
    report = asyncio.run(
        replay_dead_letters(
            _broker_address(settings),
            dlq_topic=settings.dlq_topic,
            usage_topic=settings.usage_topic,
            code=code,
            limit=limit,
        )
    )
    typer.echo(
        f"republished {sum(report.republished.values())} "
        f"{dict(report.republished)}; skipped {dict(report.skipped)}"
    )


positions_cli = typer.Typer(
    help="Consumed Kafka positions kept in the event store.", no_args_is_help=True
)
cli.add_typer(positions_cli, name="positions")


@positions_cli.command("forget")
def positions_forget(
    topic: str = typer.Option(..., help="the usage topic whose positions to forget"),
    yes: bool = typer.Option(False, "--yes", help="confirm"),
) -> None:
    """Forget the recorded positions of a recreated topic: the consumer then starts at its
    beginning. Usage keys keep already-applied events from being applied again."""
    if not yes:
        raise typer.BadParameter("this moves the consumer to the topic's beginning; add --yes")
    container = bootstrap(_settings())
    try:
        count = container.ledger.forget_consumer_positions(f"kafka:{topic}:")
    finally:
        container.close()
    typer.echo(f"forgot {count} partition positions of {topic}")


@cli.command()
def verify() -> None:
    """Recompute the books from the events, check them and compare the read models with them;
    exit 1 naming every fault found."""
    from ledger_service.audit.verify import verify as run_verify

    settings = _settings()
    container = bootstrap(settings)
    try:
        snapshot = _read_models_or_none(container.database_url, settings.read_models_schema)
        total = container.ledger.recorder.max_notification_id() or 0
        started = time.monotonic()
        with _progress(total, "verify") as advance:
            report = run_verify(container.ledger, read_models=snapshot, progress=advance)
    finally:
        container.close()
    elapsed = max(time.monotonic() - started, 1e-9)
    typer.echo(
        f"checked {report.events} events of {len(report.wallets)} wallets in "
        f"{elapsed:.1f}s ({report.events / elapsed:,.0f} events/s)"
    )
    if snapshot is None:
        typer.echo("read models: none yet (run `ledger project`); not compared")
    if report.ok:
        typer.echo(
            "OK: hash chains intact, versions gapless, trial balance zero, top-ups "
            "credited once, no usage applied twice"
            + (", read models agree" if snapshot is not None else "")
        )
        return
    for problem in report.problems:
        typer.echo(f"FAULT: {problem}", err=True)
    if report.problem_count > len(report.problems):
        typer.echo(f"... and {report.problem_count - len(report.problems)} more", err=True)
    raise typer.Exit(1)


def _read_models_or_none(database_url: str, schema: str) -> ReadModelSnapshot | None:
    from ledger_service.audit.verify import read_model_snapshot

    with psycopg.connect(database_url) as conn:
        try:
            return read_model_snapshot(conn, schema)
        except psycopg.errors.UndefinedTable:
            return None


@contextlib.contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar with events/s and ETA on a terminal; silent otherwise."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} events/s"),
        TimeRemainingColumn(),
        disable=not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task(label, total=total or None, rate="-")
        started = time.monotonic()

        def advance(done: int) -> None:
            rate = done / max(time.monotonic() - started, 1e-9)
            progress.update(task, completed=done, rate=f"{rate:,.0f}")

        yield advance


@cli.command()
def replay(
    projection: str | None = typer.Option(None, help="the projection to rebuild: read_models"),
    all_: bool = typer.Option(False, "--all", help="rebuild every projection"),
    to_position: int | None = typer.Option(None, min=1, help="stop at this event position"),
) -> None:
    """Rebuild the read models from the event store into fresh tables and swap them in
    atomically; the live API keeps serving the old tables until the swap."""
    from ledger_service.audit.replay import replay as run_replay
    from projections.tables import PROJECTION_NAME

    if all_ == (projection is not None):
        raise typer.BadParameter("give --projection NAME or --all")
    if projection is not None and projection != PROJECTION_NAME:
        raise typer.BadParameter(f"unknown projection {projection!r}; known: {PROJECTION_NAME}")
    settings = _settings()
    container = bootstrap(settings)
    try:
        url = container.database_url
        total = to_position or container.ledger.recorder.max_notification_id() or 0
        with _progress(total, "replay") as advance:
            result = run_replay(
                container.ledger,
                lambda: psycopg.connect(url),
                live_schema=settings.read_models_schema,
                to_position=to_position,
                progress=advance,
            )
    finally:
        container.close()
    typer.echo(
        f"replayed {result.events} events up to position {result.position} in "
        f"{result.seconds:.1f}s ({result.events_per_s:,.0f} events/s); swapped in"
    )


@cli.command()
def history(
    company: str = typer.Option(..., help="company id"),
    at: datetime | None = typer.Option(None, help="a time (ISO 8601; no zone means UTC)"),
    position: int | None = typer.Option(None, min=1, help="a global event position"),
    pool_sender: str | None = typer.Option(None, help="per_sender wallets: the sender"),
) -> None:
    """The wallet's state (buckets, limits, senders) as it was then, from its events."""
    from ledger_service.audit.history import wallet_as_of

    container = bootstrap(_settings())
    try:
        with _refusals_as_exit():
            state = wallet_as_of(
                container.ledger,
                company,
                position=position,
                at=_aware_or_none(at),
                pool_sender_id=pool_sender,
            )
    finally:
        container.close()
    typer.echo(json.dumps(state.as_dict(), indent=2))


audit_cli = typer.Typer(help="Audit trail.", no_args_is_help=True)
cli.add_typer(audit_cli, name="audit")


@audit_cli.command("export")
def audit_export(
    company: str = typer.Option(..., help="company id"),
    since: datetime | None = typer.Option(None, "--from", help="from this time (inclusive)"),
    until: datetime | None = typer.Option(None, "--to", help="to this time (exclusive)"),
    fmt: str = typer.Option("csv", "--format", help="csv or jsonl"),
    pool_sender: str | None = typer.Option(None, help="per_sender wallets: the sender"),
) -> None:
    """Write the wallet's full trail to standard output."""
    from ledger_service.audit.export import audit_rows, write_rows

    if fmt not in ("csv", "jsonl"):
        raise typer.BadParameter("--format is csv or jsonl")
    container = bootstrap(_settings())
    try:
        with _refusals_as_exit():
            rows = audit_rows(
                container.ledger,
                company,
                since=_aware_or_none(since),
                until=_aware_or_none(until),
                pool_sender_id=pool_sender,
            )
            write_rows(rows, sys.stdout, fmt)
    finally:
        container.close()


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed: less CPU per request on the read path (see bench-api)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - not on Windows
        return None
    return uvloop.new_event_loop


def main() -> None:
    cli()
