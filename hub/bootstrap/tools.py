"""The composition root's small functions for one-off commands and for the process:
the admin token, observability, migrations, the rebuild, the connectors role's runner (its
one factory: the process, ``koppelhub import``, tests and benchmarks) and the operator and
token tools of the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.egress import egress
from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.kafka_consumer import quiet_after_s
from hub.adapters.kafka_operators import KafkaLogInspector
from hub.adapters.postgres.audit import PostgresAuditLog
from hub.adapters.postgres.connectors import PostgresConnectorStore
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.engine import migrate as migrate_schema
from hub.adapters.postgres.fingerprints import PostgresFingerprintStore
from hub.adapters.postgres.imports import PostgresImportStore
from hub.adapters.postgres.landscape import PostgresLandscapeStore
from hub.adapters.postgres.members import PostgresMemberRegistry
from hub.adapters.postgres.notify import LogAnnouncer
from hub.adapters.postgres.operations import PostgresOperationsStore
from hub.adapters.postgres.runs import PostgresRunStore
from hub.adapters.postgres.tokens import PostgresTokenStore
from hub.adapters.postgres.write_ahead import WriteAheadEventLog
from hub.adapters.prometheus import PrometheusMetrics, multiprocess_dir
from hub.adapters.tracing import configure_tracing
from hub.errors import BrokerUnavailable
from hub.ports import EventLog, LandscapeReader
from hub.ports.audit import AuditEntry, AuditLog
from hub.ports.members import MemberRegistry
from hub.ports.metrics import NO_METRICS, Metrics
from hub.ports.operators import LogInspector, OperationsStore
from hub.services.connectors import ConnectorContexts, ConnectorRunner, organisatie_known
from hub.services.landscape import ProjectionResult
from hub.services.landscape import rebuild as rebuild_landscape
from hub.services.tokens import TokenService
from hub.settings import Settings
from subscriptions.ssrf import NetworkPolicy


def admin_token(settings: Settings) -> tuple[str, bool]:
    """The admin token: the setting, else the one stored in the data dir, else a new one.

    Returns the token and whether it was generated just now."""
    if settings.admin_token:
        return settings.admin_token, False
    path = settings.data_dir / "admin-token"
    if path.exists():
        return path.read_text().strip(), False
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)  # never readable by others
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token, True


def observability(settings: Settings) -> None:
    """Metrics in ``<data dir>/metrics`` (unless PROMETHEUS_MULTIPROC_DIR says otherwise), so
    the API's /metrics sums every process of this data dir; the OpenTelemetry SDK with an OTLP
    exporter when OTEL_* variables configure one. Call before a hub starts."""
    multiprocess_dir(settings.data_dir)
    configure_tracing()


async def release_metrics() -> None:
    PrometheusMetrics.process_exited()


def migrate(database_url: str) -> None:
    """Bring the database schema up to date (idempotent, serialised by an advisory lock)."""
    migrate_schema(database_url)


async def rebuild(database_url: str, audit: AuditEntry | None = None) -> ProjectionResult:
    """Replay the event archive into emptied landscape tables (``koppelhub rebuild``); ``audit``
    is written in the rebuild's transaction."""
    engine = create_engine(database_url)
    try:
        return await rebuild_landscape(PostgresLandscapeStore(engine), audit=audit)
    finally:
        await engine.dispose()


def connector_runner(
    settings: Settings, engine: AsyncEngine, event_log: EventLog, metrics: Metrics = NO_METRICS
) -> ConnectorRunner:
    """The connectors role's runner on PostgreSQL, publishing to ``event_log``, its requests
    guarded by KOPPELHUB_CONNECTORS_ALLOW_NETWORKS."""
    c = settings.connectors
    return ConnectorRunner(
        PostgresConnectorStore(engine, lease_seconds=c.lease_seconds),
        PostgresImportStore(engine, lease_seconds=c.lease_seconds),
        PostgresFingerprintStore(engine, lease_seconds=c.lease_seconds),
        event_log,
        c,
        hub_urn=settings.source_urn,
        data_dir=settings.data_dir,
        egress=egress(NetworkPolicy.parse(c.allow_networks)),
        runs=PostgresRunStore(engine),
        owners=PostgresLandscapeStore(engine).owners,
        metrics=metrics,
        landscape=PostgresLandscapeStore(engine),
    )


def connector_contexts(settings: Settings, landscape: LandscapeReader | None = None) -> ConnectorContexts:
    """Contexts of connector instances, their requests guarded by KOPPELHUB_CONNECTORS_ALLOW_NETWORKS;
    with ``landscape``, their local files kept out of other organisations' folders."""
    egress_ = egress(NetworkPolicy.parse(settings.connectors.allow_networks))
    known = organisatie_known(landscape) if landscape is not None else None
    return ConnectorContexts(
        settings.connectors, settings.data_dir, egress_, settings.source_urn, is_organisatie=known
    )


def announce_writes(event_log: KafkaEventLog, database_url: str, settings: Settings) -> LogAnnouncer:
    """Tell the projectors of other processes (``run``'s children, roles run apart, a running
    hub when this is a one-off command) when ``event_log`` was written to, so theirs can idle
    for long and still fetch at once; the caller stops the announcer."""
    announcer = LogAnnouncer(database_url, every_s=quiet_after_s(settings.kafka) / 2)
    event_log.written.announce = announcer.announce
    return announcer


@contextlib.asynccontextmanager
async def import_runner(
    settings: Settings, kafka_bootstrap: str, database_url: str, *, embedded_broker: bool = False
) -> AsyncIterator[ConnectorRunner]:
    """A runner for ``koppelhub import``: its own small pool, the broker's topics ensured; closed
    (mapping worker, producer, engine) on the way out.

    It publishes as ``POST /events`` does: through the write-ahead log when ``run`` would
    (KOPPELHUB_WRITE_AHEAD, or an embedded broker that keeps its log in memory), so a row the
    import counted as published survives a power cut; the next ``run`` relays it."""
    write_ahead = settings.write_ahead if settings.write_ahead is not None else embedded_broker
    engine = create_engine(database_url, pool_size=2)
    try:
        await ensure_topics(kafka_bootstrap, settings.kafka)
        event_log = KafkaEventLog(kafka_bootstrap, settings.kafka)
        await event_log.start()
        announcer = announce_writes(event_log, database_url, settings)
        try:
            publisher = WriteAheadEventLog(engine, event_log) if write_ahead else event_log
            runner = connector_runner(settings, engine, publisher)
            try:
                yield runner
            finally:
                await asyncio.to_thread(runner.close)
                if isinstance(publisher, WriteAheadEventLog):
                    await publisher.close()
        finally:
            await announcer.stop()
            await event_log.stop()
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def token_service(database_url: str) -> AsyncIterator[TokenService]:
    """The token service on PostgreSQL, for ``koppelhub token`` (its store writes a change's
    audit entry in the change's transaction)."""
    engine = create_engine(database_url, pool_size=1)
    try:
        yield TokenService(PostgresTokenStore(engine), landscape=PostgresLandscapeStore(engine))
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def audit_trail(database_url: str) -> AsyncIterator[AuditLog]:
    """The audit trail on PostgreSQL, for a command whose change has no transaction of its own
    to carry the entry (``koppelhub dlq redrive``: a produce to Kafka)."""
    engine = create_engine(database_url, pool_size=1)
    try:
        yield PostgresAuditLog(engine)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def operator_tools(
    settings: Settings, kafka_bootstrap: str, database_url: str
) -> AsyncIterator[tuple[LogInspector, OperationsStore, MemberRegistry]]:
    """The operator ports for ``koppelhub status`` and ``koppelhub dlq`` against a running
    hub's broker and database (a small pool and a producer of their own)."""
    engine = create_engine(database_url, pool_size=2)
    try:
        event_log = KafkaEventLog(kafka_bootstrap, settings.kafka)
        await event_log.start()
        announcer = announce_writes(event_log, database_url, settings)
        try:
            inspector = KafkaLogInspector(
                kafka_bootstrap, settings.kafka, event_log.producer, written=event_log.written
            )
            try:
                yield inspector, PostgresOperationsStore(engine), PostgresMemberRegistry(engine)
            finally:
                await inspector.close()
        finally:
            await announcer.stop()
            await event_log.stop()
    finally:
        await engine.dispose()


async def create_topics(bootstrap: str, settings: Settings) -> bool:
    """Create the topics on an embedded broker started anew (it starts empty); False when it
    does not answer."""
    try:
        await ensure_topics(bootstrap, settings.kafka)
    except BrokerUnavailable as e:
        structlog.get_logger(__name__).error("embedded_broker_topics_failed", error=str(e))
        return False
    return True
