"""The process wiring: :func:`wire` opens the adapters one process needs and builds the
services of its roles; :class:`HubProcess` is that wiring run by the supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable

import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.kafka_consumer import KafkaLogConsumer
from hub.adapters.kafka_operators import KafkaLogInspector
from hub.adapters.oidc import OidcConfig, OidcVerifier
from hub.adapters.postgres.audit import PostgresAuditLog
from hub.adapters.postgres.connectors import PostgresConnectorStore
from hub.adapters.postgres.deliveries import PostgresDeliveryStore
from hub.adapters.postgres.engine import create_engine, projection_engine
from hub.adapters.postgres.fingerprints import PostgresFingerprintStore
from hub.adapters.postgres.imports import PostgresImportStore
from hub.adapters.postgres.landscape import PostgresLandscapeStore
from hub.adapters.postgres.lease_holders import LeaseHolder
from hub.adapters.postgres.members import PostgresMemberRegistry
from hub.adapters.postgres.notify import LOG_CHANNEL, ChannelListener
from hub.adapters.postgres.operations import PostgresOperationsStore
from hub.adapters.postgres.outbox import OutboxListener, PostgresOutbox
from hub.adapters.postgres.projection import PostgresProjectionStore
from hub.adapters.postgres.retention import PostgresRetention
from hub.adapters.postgres.runs import PostgresRunStore
from hub.adapters.postgres.subscriptions import PostgresSubscriptionStore
from hub.adapters.postgres.tokens import PostgresTokenStore
from hub.adapters.postgres.write_ahead import WriteAheadEventLog
from hub.adapters.prometheus import PrometheusMetrics
from hub.api.app import create_app
from hub.api.auth import TokenAuthenticator
from hub.api.context import ApiContext, NoMetricsExposed
from hub.api.protocol import guarded_protocol
from hub.bootstrap.tools import (
    admin_token,
    announce_writes,
    connector_contexts,
    connector_runner,
    release_metrics,
)
from hub.ports import max_record_bytes
from hub.ports.metrics import ExposedMetrics
from hub.services.audit import run_audit_retention
from hub.services.collector import freeze_start_up_heap
from hub.services.connectors import ConnectorRunner
from hub.services.delivery_policy import RetryPolicy
from hub.services.dispatcher import Dispatcher
from hub.services.dispatcher_wakeup import Beside, wakes
from hub.services.landscape import DerivedEvents
from hub.services.projector import Projector
from hub.services.retention import run_retention
from hub.services.tokens import TokenLookup, TokenService
from hub.services.writeback import ClientRouter, ConnectorSink
from hub.settings import Settings
from hub.supervisor import QuietServer, Signals, Supervisor, Wiring
from subscriptions.delivery import DeliveryClient
from subscriptions.retry import RetrySchedule
from subscriptions.sender import WebhookSender
from subscriptions.ssrf import NetworkPolicy

ROLES = ("api", "projector", "dispatcher", "connectors")
#: Roles that read or write Kafka (the dispatcher publishes the outcomes of connector write-backs).
KAFKA_ROLES = frozenset({"api", "projector", "connectors", "dispatcher"})


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
        #: The projector's log consumers as they are made, and what wakes them when another
        #: process writes to the log (tests look at both).
        self.log_consumers: list[KafkaLogConsumer] = []
        self.log_listener: ChannelListener | None = None
        #: Which outbox NOTIFYs wake this process's dispatcher, when it runs beside a projector.
        self.wakeups: Beside | None = None
        #: A spare dispatcher (a dispatch child of ``run``, hub/services/dispatcher_wakeup.py):
        #: it wakes only when a work process's dispatcher has no room, and leaves the
        #: subscriptions that limit their sink to those.
        self.spare = False
        #: Listening sockets the API serves on instead of binding its own (a child of a
        #: multi-process ``run`` shares its parent's, hub/children.py).
        self.sockets: list[socket.socket] | None = None
        #: One set of metrics per process, shared by its roles (summed across processes in
        #: multiprocess mode, see hub.adapters.prometheus); none with KOPPELHUB_METRICS=false.
        self.metrics: ExposedMetrics = PrometheusMetrics() if settings.metrics else NoMetricsExposed()

    async def start(self) -> None:
        """Open adapters and start every role of this process as a task."""
        self.launch(await wire(self))
        # What start-up allocated (modules, settings, clients) stays for the life of the
        # process: keep it out of the collector's full passes, which otherwise walk it every
        # time and paused the event loop for 50-170 ms under load (issue 9, /healthz stalls);
        # young passes rarer too (hub.services.collector).
        freeze_start_up_heap()

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
    w.closers.append(release_metrics)
    try:
        engine = hub.engine = create_engine(hub.database_url)
        w.closers.append(engine.dispose)
        if KAFKA_ROLES & roles:
            await ensure_topics(hub.kafka_bootstrap, s.kafka)
            event_log = hub.event_log = KafkaEventLog(hub.kafka_bootstrap, s.kafka)
            await event_log.start()
            w.closers.append(event_log.stop)
            w.checks["broker"] = event_log.ping
            await _wire_announcer(hub, w)
            if hub.write_ahead:
                await _wire_write_ahead(hub, w)
        w.checks["database"] = lambda: _database_ok(engine)
        if {"projector", "dispatcher"} <= roles:  # a work process: hub/services/dispatcher_wakeup.py
            hub.wakeups = Beside()
        if "projector" in roles:
            await _wire_projector(hub, w)
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
    # Its own inspector: looks at the log only when a row is overdue (write_ahead_overdue.py).
    inspector = KafkaLogInspector(hub.kafka_bootstrap, hub.settings.kafka, hub.event_log.producer)
    w.closers.append(inspector.close)
    wal = hub.wal = WriteAheadEventLog(hub.engine, hub.event_log, inspector=inspector)
    w.closers.append(wal.close)
    await wal.relay()
    w.runs["write-ahead"] = lambda signals: wal.run_pruner(signals.stop_work)


async def _wire_announcer(hub: HubProcess, w: Wiring) -> None:
    """Tell the projectors of other processes (``run``'s children, or roles run apart) when
    this one wrote to the log, so that theirs can idle for long and still fetch at once."""
    assert hub.event_log is not None
    announcer = announce_writes(hub.event_log, hub.database_url, hub.settings)
    w.closers.append(announcer.stop)


async def _wire_projector(hub: HubProcess, w: Wiring) -> None:
    s = hub.settings
    assert hub.engine is not None and hub.event_log is not None
    event_log = hub.event_log
    # Another process's write wakes this one's idle members, as this process's own does.
    listener = hub.log_listener = ChannelListener(hub.database_url, LOG_CHANNEL, event_log.written.heard)
    await listener.start()
    w.closers.append(listener.stop)

    members = PostgresMemberRegistry(hub.engine)  # each member records its partitions (status on Tansu)

    def consumer() -> KafkaLogConsumer:
        made = KafkaLogConsumer(
            hub.kafka_bootstrap,
            s.kafka,
            max_record_bytes=max_record_bytes(s.max_event_bytes),
            wake=event_log.written,
            members=members,
        )
        hub.log_consumers.append(made)
        return made

    projector_engine = projection_engine(hub.database_url, s.projector_members)
    w.closers.append(projector_engine.dispose)
    beside = hub.wakeups  # None: its NOTIFYs wake every dispatcher (hub/services/dispatcher_wakeup.py)
    store = (
        PostgresProjectionStore(projector_engine, beside.payload, beside.committed)
        if beside is not None
        else PostgresProjectionStore(projector_engine)
    )
    projector = hub.projector = Projector(
        consumer,
        store,
        hub.wal or hub.event_log,  # dead letters kept in PostgreSQL too with the write-ahead log
        derive=DerivedEvents(s.source_urn, hub.public_url),
        batch_size=s.projector_batch_size,
        members=s.projector_members,
        metrics=hub.metrics,
    )
    # The process's stop bound (KOPPELHUB_SHUTDOWN_TIMEOUT_SECONDS, of which the supervisor gives
    # the drain half and then sets stop_work) ends a drain, not the projector's own 60 s default:
    # with a bound above 120 s that default cut a drain short the process still had time for.
    w.runs["projector"] = lambda signals: projector.run(
        signals.stop_work, drain=signals.drain, drain_timeout=s.shutdown_timeout_seconds
    )
    w.healthy["projector"] = lambda: projector.running


async def _wire_dispatcher(hub: HubProcess, w: Wiring) -> None:
    assert hub.engine is not None
    d = hub.settings.delivery
    listener = OutboxListener(hub.database_url, wakes if hub.wakeups or hub.spare else None)
    await listener.start()
    w.closers.append(listener.stop)
    sender = WebhookSender(
        NetworkPolicy.parse(d.allow_networks), timeout_s=d.timeout_seconds, max_connections=d.concurrency
    )
    await sender.__aenter__()
    w.closers.append(lambda: sender.__aexit__(None, None, None))
    # The outbox's own pool, without the ping per checkout: a claim and a batch of outcomes are
    # one statement each, and the ping made them two round trips (about 4 % of the work child's
    # py-spy samples in benchmarks.fanout). After a PostgreSQL restart one claim or recording fails
    # retriably and the dispatcher tries again (claims next round, outcomes until recorded).
    # Its commits do not wait for the disk either (issue 17: a claim's fsync, 2-8 ms here, was on
    # the way of every delivery): what a crash of PostgreSQL loses of them is a lease (its
    # delivery is claimed again) or an outcome (the delivery is sent again), which at least once
    # allows, as a crash between a POST and its recording always did.
    outbox_engine = create_engine(hub.database_url, pool_size=3, pre_ping=False, synchronous_commit=False)
    w.closers.append(outbox_engine.dispose)
    holder = LeaseHolder(hub.database_url)  # frees a dead dispatcher's leases at the start
    w.closers.append(holder.close)
    outbox = PostgresOutbox(
        outbox_engine,
        source_urn=hub.settings.source_urn,
        disable_after_seconds=d.disable_after_seconds,
        default_concurrency=d.max_concurrency_per_subscription,
        holder=holder.key,
        spare=hub.spare,
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
        hub.wal or hub.event_log,  # an outcome event is as durable as a publish (the write-ahead log)
        connector_contexts(hub.settings),
        hub_urn=hub.settings.source_urn,
        fingerprints=PostgresFingerprintStore(hub.engine),
    )
    w.closers.append(write_back.close)
    dispatcher = hub.dispatcher = Dispatcher(
        outbox,
        ClientRouter(DeliveryClient(sender, proxy=d.proxy), write_back),
        policy,
        listener.wakeup,
        concurrency=d.concurrency,
        concurrency_per_subscription=d.max_concurrency_per_subscription,
        # Claimed ahead, a delivery may wait one attempt for its place before its own attempt.
        claim_ahead=d.lease_seconds > 2 * d.timeout_seconds,
        batch_size=d.batch_size,
        lease_seconds=d.lease_seconds,
        poll_seconds=d.poll_seconds,
        metrics=hub.metrics,
    )
    if hub.wakeups is not None:
        hub.wakeups.beside(lambda: dispatcher.claiming, listener.wakeup.set)
    retention = PostgresRetention(hub.engine)

    async def dispatching(signals: Signals) -> None:
        await holder.start()
        await dispatcher.run(signals.stop_work)

    w.runs["dispatcher"] = dispatching
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
    inspector = KafkaLogInspector(
        hub.kafka_bootstrap, s.kafka, hub.event_log.producer, written=hub.event_log.written
    )
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
        connector_context=connector_contexts(s, PostgresLandscapeStore(hub.engine)),
        wake_connectors=hub.connector_runner.wake if hub.connector_runner else None,
        deliveries=PostgresDeliveryStore(hub.engine),
        tokens=TokenService(tokens, landscape=PostgresLandscapeStore(hub.engine)),
        audit=audit,
        log_inspector=inspector,
        metrics=hub.metrics,
        operations=PostgresOperationsStore(hub.engine),
        members=PostgresMemberRegistry(hub.engine),
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
    w.runs["api"] = lambda _signals: server.serve(sockets=hub.sockets)
