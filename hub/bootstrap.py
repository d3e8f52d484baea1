"""Composition root: wires settings, adapters and services into the roles of one process.

``HubProcess`` runs any subset of the roles (``api``, ``projector``, ``dispatcher``, ``connectors``); the CLI
builds one per command and ``koppelhub run`` asks for all of them. Shutdown follows the
order that loses nothing: stop intake (the API and the connectors), drain the projector until everything
accepted is in PostgreSQL, let the dispatcher finish what it has in flight, then close the
adapters. The embedded services are stopped by the caller after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.kafka import KafkaEventLog, ensure_topics, make_consumer
from hub.adapters.postgres.connectors import PostgresConnectorStore
from hub.adapters.postgres.deliveries import PostgresDeliveryStore
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.fingerprints import PostgresFingerprintStore
from hub.adapters.postgres.imports import PostgresImportStore
from hub.adapters.postgres.landscape import PostgresLandscapeStore
from hub.adapters.postgres.outbox import OutboxListener, PostgresOutbox
from hub.adapters.postgres.projection import PostgresProjectionStore
from hub.adapters.postgres.retention import PostgresRetention
from hub.adapters.postgres.runs import PostgresRunStore
from hub.adapters.postgres.subscriptions import PostgresSubscriptionStore
from hub.api.app import create_app
from hub.api.auth import TokenAuthenticator
from hub.api.context import ApiContext
from hub.services.connectors import ConnectorRunner
from hub.services.dispatcher import Dispatcher, RetryPolicy
from hub.services.landscape import DerivedEvents
from hub.services.projector import Projector
from hub.services.retention import run_retention
from hub.settings import Settings
from subscriptions.delivery import DeliveryClient
from subscriptions.retry import RetrySchedule
from subscriptions.sender import WebhookSender
from subscriptions.ssrf import NetworkPolicy

log = structlog.get_logger(__name__)

ROLES = ("api", "projector", "dispatcher", "connectors")
#: Roles that read or write Kafka; the dispatcher works from PostgreSQL alone.
KAFKA_ROLES = frozenset({"api", "projector", "connectors"})


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


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the hub decides the shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


@dataclass
class HubProcess:
    settings: Settings
    kafka_bootstrap: str
    database_url: str
    roles: tuple[str, ...] = ROLES
    engine: AsyncEngine | None = None
    event_log: KafkaEventLog | None = None
    projector: Projector | None = None
    dispatcher: Dispatcher | None = None
    connector_runner: ConnectorRunner | None = None
    server: QuietServer | None = None
    stop_intake: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _closers: list[Any] = field(default_factory=list)
    _stop_work: asyncio.Event = field(default_factory=asyncio.Event)
    _drain: asyncio.Event = field(default_factory=asyncio.Event)
    _stop_connectors: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        """Open adapters and start every role of this process as a task."""
        s = self.settings
        self.engine = create_engine(self.database_url)
        self._closers.append(self.engine.dispose)
        if KAFKA_ROLES & set(self.roles):
            await ensure_topics(self.kafka_bootstrap, s.kafka)
            self.event_log = KafkaEventLog(self.kafka_bootstrap, s.kafka)
            await self.event_log.start()
            self._closers.append(self.event_log.stop)

        if "projector" in self.roles:
            assert self.event_log is not None
            self.projector = Projector(
                lambda listener: make_consumer(self.kafka_bootstrap, s.kafka, listener=listener),
                PostgresProjectionStore(self.engine),
                self.event_log,
                derive=DerivedEvents(s.source_urn, self.public_url),
                batch_size=s.projector_batch_size,
                members=s.projector_members,
            )
            self._spawn("projector", self.projector.run(self._stop_work, drain=self._drain))
        if "dispatcher" in self.roles:
            await self._start_dispatcher()
        if "connectors" in self.roles:
            assert self.event_log is not None
            self.connector_runner = self._connector_runner()
            self._spawn("connectors", self.connector_runner.run(self._stop_connectors))
        if "api" in self.roles:
            self._start_api()

    async def _start_dispatcher(self) -> None:
        assert self.engine is not None
        d = self.settings.delivery
        listener = OutboxListener(self.database_url)
        await listener.start()
        self._closers.append(listener.stop)
        sender = WebhookSender(
            NetworkPolicy.parse(d.allow_networks),
            timeout_s=d.timeout_seconds,
            max_connections=d.concurrency,
        )
        await sender.__aenter__()
        self._closers.append(lambda: sender.__aexit__(None, None, None))
        outbox = PostgresOutbox(
            self.engine,
            source_urn=self.settings.source_urn,
            disable_after_seconds=d.disable_after_seconds,
            default_concurrency=d.max_concurrency_per_subscription,
        )
        policy = RetryPolicy(
            RetrySchedule.of(d.retry_schedule, jitter=d.retry_jitter),
            slow_down_s=d.slow_down_seconds,
            retry_after_max_s=d.retry_after_max_seconds,
        )
        self.dispatcher = Dispatcher(
            outbox,
            DeliveryClient(sender, proxy=d.proxy),
            policy,
            listener.wakeup,
            concurrency=d.concurrency,
            concurrency_per_subscription=d.max_concurrency_per_subscription,
            batch_size=d.batch_size,
            lease_seconds=d.lease_seconds,
            poll_seconds=d.poll_seconds,
        )
        self._spawn("dispatcher", self.dispatcher.run(self._stop_work))
        self._spawn(
            "retention",
            run_retention(
                PostgresRetention(self.engine),
                self._stop_work,
                interval_seconds=d.cleanup_interval_seconds,
                attempt_days=d.attempt_retention_days,
                archive_days=d.archive_retention_days,
            ),
        )

    def _connector_runner(self) -> ConnectorRunner:
        assert self.engine is not None and self.event_log is not None
        c = self.settings.connectors
        return ConnectorRunner(
            PostgresConnectorStore(self.engine, lease_seconds=c.lease_seconds),
            PostgresImportStore(self.engine, lease_seconds=c.lease_seconds),
            PostgresFingerprintStore(self.engine, lease_seconds=c.lease_seconds),
            self.event_log,
            c,
            hub_urn=self.settings.source_urn,
            data_dir=self.settings.data_dir,
            runs=PostgresRunStore(self.engine),
        )

    def _start_api(self) -> None:
        assert self.engine is not None and self.event_log is not None
        s = self.settings
        token, _ = admin_token(s)
        ctx = ApiContext(
            settings=s,
            event_log=self.event_log,
            subscriptions=PostgresSubscriptionStore(self.engine),
            landscape=PostgresLandscapeStore(self.engine),
            network_policy=NetworkPolicy.parse(s.delivery.allow_networks),
            auth=TokenAuthenticator(token),
            readiness=self.readiness,
            connectors=PostgresConnectorStore(self.engine),
            imports=PostgresImportStore(self.engine),
            runs=PostgresRunStore(self.engine),
            wake_connectors=self.connector_runner.wake if self.connector_runner else None,
            deliveries=PostgresDeliveryStore(self.engine),
        )
        config = uvicorn.Config(
            create_app(ctx),
            host=s.http_host,
            port=s.http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self.server = QuietServer(config)
        self._spawn("api", self.server.serve())

    def _spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._role_ended)
        self._tasks[name] = task

    def _role_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("role_crashed", role=task.get_name(), error=repr(task.exception()))
            self.stop_intake.set()  # a crashed role takes the process down; the supervisor restarts it

    async def wait_started(self, within: float = 30.0) -> None:
        """Return when the API listens (if this process serves it)."""
        deadline = asyncio.get_running_loop().time() + within
        while self.server is not None and not self.server.started:
            if asyncio.get_running_loop().time() > deadline or self._tasks["api"].done():
                raise RuntimeError("the API did not start")
            await asyncio.sleep(0.02)

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

    async def readiness(self) -> dict[str, bool]:
        checks: dict[str, bool] = {}
        if self.event_log is not None:
            checks["broker"] = await self.event_log.ping()
        checks["database"] = await self._database_ok()
        for name, task in self._tasks.items():
            checks[name] = not task.done()
        if self.projector is not None:
            checks["projector"] = checks["projector"] and self.projector.running
        return checks

    async def _database_ok(self) -> bool:
        if self.engine is None:
            return False
        try:
            async with asyncio.timeout(2.0), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means "not ready", reported as such
            return False
        return True

    async def wait(self) -> None:
        """Block until a role ends or :attr:`stop_intake` is set."""
        waiter = asyncio.create_task(self.stop_intake.wait())
        await asyncio.wait({waiter, *self._tasks.values()}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    async def shutdown(self, *, drain_timeout: float = 60.0) -> None:
        """Stop intake, drain what was accepted, finish in-flight deliveries, close adapters."""
        if self.server is not None:
            self.server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._tasks["api"]), timeout=10)
        self._stop_connectors.set()  # connectors publish too: stop them before the drain
        if "connectors" in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._tasks["connectors"]), timeout=drain_timeout)
        self._drain.set()
        if "projector" in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._tasks["projector"]), timeout=drain_timeout)
        self._stop_work.set()
        for name, task in self._tasks.items():
            try:
                await asyncio.wait_for(task, timeout=drain_timeout)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("role_stop_timed_out", role=name)
            except Exception as e:  # noqa: BLE001 - already logged by _role_ended
                log.debug("role_stopped_with_error", role=name, error=repr(e))
        for close in reversed(self._closers):
            with contextlib.suppress(Exception):
                await close()
        log.info("hub_stopped", roles=list(self.roles))
