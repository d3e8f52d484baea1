"""Composition root: the one module that wires settings and adapters into services and roles.

:func:`wire` opens the adapters one process needs and builds the services of its roles (any
subset of ``api``, ``projector``, ``dispatcher``, ``connectors``); :class:`HubProcess` is that
wiring run by the :class:`~hub.supervisor.Supervisor`, which the CLI starts per command
(``koppelhub run`` asks for every role). Shutdown follows the order that loses nothing: stop
intake (the API and the connectors), drain the projector until everything accepted is in
PostgreSQL, let the dispatcher finish what it has in flight, then close the adapters. The
embedded services are stopped by the caller after that.

The CLI's other commands call the small functions here (:func:`migrate`, :func:`rebuild`,
:func:`import_runner`) rather than the adapters; :func:`connector_runner` is the one factory
of the connectors role's runner (the process, ``koppelhub import``, tests and benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.egress import egress
from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.kafka_consumer import KafkaLogConsumer
from hub.adapters.kafka_operators import KafkaLogInspector
from hub.adapters.oidc import OidcConfig, OidcVerifier
from hub.adapters.postgres.audit import PostgresAuditLog
from hub.adapters.postgres.connectors import PostgresConnectorStore
from hub.adapters.postgres.deliveries import PostgresDeliveryStore
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.engine import migrate as migrate_schema
from hub.adapters.postgres.fingerprints import PostgresFingerprintStore
from hub.adapters.postgres.imports import PostgresImportStore
from hub.adapters.postgres.landscape import PostgresLandscapeStore
from hub.adapters.postgres.operations import PostgresOperationsStore
from hub.adapters.postgres.outbox import OutboxListener, PostgresOutbox
from hub.adapters.postgres.projection import PostgresProjectionStore
from hub.adapters.postgres.retention import PostgresRetention
from hub.adapters.postgres.runs import PostgresRunStore
from hub.adapters.postgres.subscriptions import PostgresSubscriptionStore
from hub.adapters.postgres.tokens import PostgresTokenStore
from hub.adapters.postgres.write_ahead import WriteAheadEventLog
from hub.adapters.prometheus import PrometheusMetrics, multiprocess_dir
from hub.adapters.tracing import configure_tracing
from hub.api.app import create_app
from hub.api.auth import TokenAuthenticator
from hub.api.context import ApiContext
from hub.api.protocol import guarded_protocol
from hub.ports import EventLog, max_record_bytes
from hub.ports.audit import AuditLog
from hub.ports.metrics import NO_METRICS, Metrics
from hub.ports.operators import LogInspector, OperationsStore
from hub.services.audit import run_audit_retention
from hub.services.connectors import ConnectorContexts, ConnectorRunner
from hub.services.dispatcher import Dispatcher, RetryPolicy
from hub.services.landscape import DerivedEvents, ProjectionResult
from hub.services.landscape import rebuild as rebuild_landscape
from hub.services.projector import Projector
from hub.services.retention import run_retention
from hub.services.tokens import TokenLookup, TokenService
from hub.services.writeback import ClientRouter, ConnectorSink
from hub.settings import Settings
from hub.supervisor import QuietServer, Supervisor, Wiring
from subscriptions.delivery import DeliveryClient
from subscriptions.retry import RetrySchedule
from subscriptions.sender import WebhookSender
from subscriptions.ssrf import NetworkPolicy

ROLES = ("api", "projector", "dispatcher", "connectors")
#: Roles that read or write Kafka (the dispatcher publishes the outcomes of connector write-backs).
KAFKA_ROLES = frozenset({"api", "projector", "connectors", "dispatcher"})

__all__ = [
    "KAFKA_ROLES",
    "ROLES",
    "HubProcess",
    "QuietServer",
    "admin_token",
    "connector_runner",
    "import_runner",
    "migrate",
    "observability",
    "operator_tools",
    "rebuild",
    "token_service",
    "wire",
]


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


async def _metrics_released() -> None:
    PrometheusMetrics.process_exited()


def migrate(database_url: str) -> None:
    """Bring the database schema up to date (idempotent, serialised by an advisory lock)."""
    migrate_schema(database_url)


async def rebuild(database_url: str) -> ProjectionResult:
    """Replay the event archive into emptied landscape tables (``koppelhub rebuild``)."""
    engine = create_engine(database_url)
    try:
        return await rebuild_landscape(PostgresLandscapeStore(engine))
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
    )


def connector_contexts(settings: Settings) -> ConnectorContexts:
    """Contexts of connector instances, their requests guarded by KOPPELHUB_CONNECTORS_ALLOW_NETWORKS."""
    egress_ = egress(NetworkPolicy.parse(settings.connectors.allow_networks))
    return ConnectorContexts(settings.connectors, settings.data_dir, egress_)


@contextlib.asynccontextmanager
async def import_runner(
    settings: Settings, kafka_bootstrap: str, database_url: str
) -> AsyncIterator[ConnectorRunner]:
    """A runner for ``koppelhub import``: its own small pool, the broker's topics ensured; closed
    (mapping worker, producer, engine) on the way out."""
    engine = create_engine(database_url, pool_size=2)
    try:
        await ensure_topics(kafka_bootstrap, settings.kafka)
        event_log = KafkaEventLog(kafka_bootstrap, settings.kafka)
        await event_log.start()
        try:
            runner = connector_runner(settings, engine, event_log)
            try:
                yield runner
            finally:
                await asyncio.to_thread(runner.close)
        finally:
            await event_log.stop()
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def token_service(database_url: str) -> AsyncIterator[tuple[TokenService, AuditLog]]:
    """The token service and the audit trail on PostgreSQL, for ``koppelhub token``."""
    engine = create_engine(database_url, pool_size=1)
    try:
        yield TokenService(PostgresTokenStore(engine)), PostgresAuditLog(engine)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def operator_tools(
    settings: Settings, kafka_bootstrap: str, database_url: str
) -> AsyncIterator[tuple[LogInspector, OperationsStore]]:
    """The operator ports for ``koppelhub status`` and ``koppelhub dlq`` against a running
    hub's broker and database (a small pool and a producer of their own)."""
    engine = create_engine(database_url, pool_size=2)
    try:
        event_log = KafkaEventLog(kafka_bootstrap, settings.kafka)
        await event_log.start()
        try:
            inspector = KafkaLogInspector(kafka_bootstrap, settings.kafka, event_log.producer)
            try:
                yield inspector, PostgresOperationsStore(engine)
            finally:
                await inspector.close()
        finally:
            await event_log.stop()
    finally:
        await engine.dispose()


async def _database_ok(engine: AsyncEngine) -> bool:
    try:
        async with asyncio.timeout(2.0), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "not ready", reported as such
        return False
    return True


class HubProcess(Supervisor):
    """One process: :func:`wire` run by the supervisor. Adapters and services are reachable
    as attributes for tests (``engine``, ``event_log``, ``projector``, ``dispatcher``)."""

    def __init__(
        self,
        settings: Settings,
        kafka_bootstrap: str,
        database_url: str,
        roles: tuple[str, ...] = ROLES,
        *,
        embedded_broker: bool = False,
    ) -> None:
        super().__init__()
        self.settings, self.kafka_bootstrap, self.database_url = settings, kafka_bootstrap, database_url
        self.roles = roles
        # KOPPELHUB_WRITE_AHEAD, unset: on when the broker keeps its log in memory.
        self.write_ahead = settings.write_ahead if settings.write_ahead is not None else embedded_broker
        self.wal: WriteAheadEventLog | None = None
        self.engine: AsyncEngine | None = None
        self.event_log: KafkaEventLog | None = None
        self.projector: Projector | None = None
        self.dispatcher: Dispatcher | None = None
        self.connector_runner: ConnectorRunner | None = None
        #: One set of metrics per process, shared by its roles (summed across processes in
        #: multiprocess mode, see hub.adapters.prometheus).
        self.metrics = PrometheusMetrics()

    async def start(self) -> None:
        """Open adapters and start every role of this process as a task."""
        self.launch(await wire(self))
        # What start-up allocated (modules, settings, clients) stays for the life of the
        # process: keep it out of the collector's full passes, which otherwise walk it every
        # time and paused the event loop for 50-170 ms under load (issue 9, /healthz stalls).
        gc.freeze()

    @property
    def api_port(self) -> int:
        assert self.server is not None and self.server.servers
        port: int = self.server.servers[0].sockets[0].getsockname()[1]
        return port

    def public_url(self) -> str:
        """Where clients reach the API: the setting, else the address it listens on."""
        s = self.settings
        if s.public_url:
            return s.public_url
        port = self.api_port if self.server is not None and self.server.started else s.http_port
        return f"http://{s.http_host}:{port}"


async def wire(hub: HubProcess) -> Wiring:
    """Open the adapters ``hub.roles`` need and build their services, recording each on ``hub``;
    on failure, whatever was opened is closed again."""
    s, roles = hub.settings, set(hub.roles)
    w = Wiring()
    w.closers.append(_metrics_released)
    try:
        engine = hub.engine = create_engine(hub.database_url)
        w.closers.append(engine.dispose)
        if KAFKA_ROLES & roles:
            await ensure_topics(hub.kafka_bootstrap, s.kafka)
            event_log = hub.event_log = KafkaEventLog(hub.kafka_bootstrap, s.kafka)
            await event_log.start()
            w.closers.append(event_log.stop)
            w.checks["broker"] = event_log.ping
            if hub.write_ahead:
                await _wire_write_ahead(hub, w)
        w.checks["database"] = lambda: _database_ok(engine)
        if "projector" in roles:
            _wire_projector(hub, w)
        if "dispatcher" in roles:
            await _wire_dispatcher(hub, w)
        if "connectors" in roles:
            assert hub.event_log is not None
            runner = hub.connector_runner = connector_runner(s, engine, hub.wal or hub.event_log, hub.metrics)
            w.runs["connectors"] = lambda signals: runner.run(signals.stop_connectors)
        if "api" in roles:
            _wire_api(hub, w)
    except BaseException:
        for close in reversed(w.closers):
            with contextlib.suppress(Exception):
                await close()
        raise
    return w


async def _wire_write_ahead(hub: HubProcess, w: Wiring) -> None:
    """Relay what was accepted but never projected (the embedded broker lost it) before any
    role starts, then keep the write-ahead log pruned (hub/adapters/postgres/write_ahead.py)."""
    assert hub.engine is not None and hub.event_log is not None
    wal = hub.wal = WriteAheadEventLog(hub.engine, hub.event_log)
    await wal.relay()
    w.runs["write-ahead"] = lambda signals: wal.run_pruner(signals.stop_work)


def _wire_projector(hub: HubProcess, w: Wiring) -> None:
    s = hub.settings
    assert hub.engine is not None and hub.event_log is not None
    projector = hub.projector = Projector(
        lambda: KafkaLogConsumer(
            hub.kafka_bootstrap, s.kafka, max_record_bytes=max_record_bytes(s.max_event_bytes)
        ),
        PostgresProjectionStore(hub.engine),
        hub.wal or hub.event_log,  # dead letters kept in PostgreSQL too with the write-ahead log
        derive=DerivedEvents(s.source_urn, hub.public_url),
        batch_size=s.projector_batch_size,
        members=s.projector_members,
        metrics=hub.metrics,
    )
    w.runs["projector"] = lambda signals: projector.run(signals.stop_work, drain=signals.drain)
    w.healthy["projector"] = lambda: projector.running


async def _wire_dispatcher(hub: HubProcess, w: Wiring) -> None:
    assert hub.engine is not None
    d = hub.settings.delivery
    listener = OutboxListener(hub.database_url)
    await listener.start()
    w.closers.append(listener.stop)
    sender = WebhookSender(
        NetworkPolicy.parse(d.allow_networks), timeout_s=d.timeout_seconds, max_connections=d.concurrency
    )
    await sender.__aenter__()
    w.closers.append(lambda: sender.__aexit__(None, None, None))
    outbox = PostgresOutbox(
        hub.engine,
        source_urn=hub.settings.source_urn,
        disable_after_seconds=d.disable_after_seconds,
        default_concurrency=d.max_concurrency_per_subscription,
    )
    policy = RetryPolicy(
        RetrySchedule.of(d.retry_schedule, jitter=d.retry_jitter),
        slow_down_s=d.slow_down_seconds,
        retry_after_max_s=d.retry_after_max_seconds,
    )
    assert hub.event_log is not None
    # Internal ``connector:`` sinks (write-back) go to the connector, every other sink is a webhook.
    write_back = ConnectorSink(
        PostgresConnectorStore(hub.engine),
        hub.event_log,
        connector_contexts(hub.settings),
        hub_urn=hub.settings.source_urn,
    )
    w.closers.append(write_back.close)
    dispatcher = hub.dispatcher = Dispatcher(
        outbox,
        ClientRouter(DeliveryClient(sender, proxy=d.proxy), write_back),
        policy,
        listener.wakeup,
        concurrency=d.concurrency,
        concurrency_per_subscription=d.max_concurrency_per_subscription,
        batch_size=d.batch_size,
        lease_seconds=d.lease_seconds,
        poll_seconds=d.poll_seconds,
        metrics=hub.metrics,
    )
    retention = PostgresRetention(hub.engine)
    w.runs["dispatcher"] = lambda signals: dispatcher.run(signals.stop_work)
    w.runs["retention"] = lambda signals: run_retention(
        retention,
        signals.stop_work,
        interval_seconds=d.cleanup_interval_seconds,
        attempt_days=d.attempt_retention_days,
        archive_days=d.archive_retention_days,
    )


def oidc_verifier(s: Settings) -> OidcVerifier | None:
    """The OIDC JWT verifier when KOPPELHUB_OIDC_ISSUER and _AUDIENCE are set."""
    if s.oidc_issuer is None or s.oidc_audience is None:
        return None
    return OidcVerifier(
        OidcConfig(
            s.oidc_issuer, s.oidc_audience, s.oidc_jwks_url, s.oidc_roles_claim, s.oidc_organisation_claim
        )
    )


def _wire_api(hub: HubProcess, w: Wiring) -> None:
    assert hub.engine is not None and hub.event_log is not None
    s = hub.settings
    token, _ = admin_token(s)
    tokens = PostgresTokenStore(hub.engine)
    audit = PostgresAuditLog(hub.engine)
    w.runs["audit-retention"] = lambda signals: run_audit_retention(
        audit, signals.stop_work, days=s.audit_retention_days, interval_seconds=3600
    )
    inspector = KafkaLogInspector(hub.kafka_bootstrap, s.kafka, hub.event_log.producer)
    w.closers.append(inspector.close)
    readiness: Callable[[], Awaitable[dict[str, bool]]] = hub.readiness
    ctx = ApiContext(
        settings=s,
        event_log=hub.wal or hub.event_log,
        subscriptions=PostgresSubscriptionStore(hub.engine),
        landscape=PostgresLandscapeStore(hub.engine),
        network_policy=NetworkPolicy.parse(s.delivery.allow_networks),
        auth=TokenAuthenticator(token, TokenLookup(tokens), oidc_verifier(s)),
        readiness=readiness,
        connectors=PostgresConnectorStore(hub.engine),
        imports=PostgresImportStore(hub.engine),
        runs=PostgresRunStore(hub.engine),
        connector_context=connector_contexts(s),
        wake_connectors=hub.connector_runner.wake if hub.connector_runner else None,
        deliveries=PostgresDeliveryStore(hub.engine),
        tokens=TokenService(tokens),
        audit=audit,
        log_inspector=inspector,
        metrics=hub.metrics,
        operations=PostgresOperationsStore(hub.engine),
    )
    config = uvicorn.Config(
        create_app(ctx),
        host=s.http_host,
        port=s.http_port,
        log_config=None,
        access_log=False,
        lifespan="off",
        http=guarded_protocol(
            idle_timeout=s.http_idle_timeout_seconds,
            header_timeout=s.http_header_timeout_seconds,
            max_connections=s.http_max_connections,
        ),
    )
    server = w.server = QuietServer(config)
    w.runs["api"] = lambda _signals: server.serve()
