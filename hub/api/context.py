"""What the HTTP layer needs from the rest of the process, wired in by the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import Request

from connectors.base import ConnectorContext
from hub.api.auth import TokenAuthenticator
from hub.ports import (
    ConnectorStore,
    DeliveryStore,
    EventLog,
    ImportStore,
    LandscapeReader,
    RunStore,
    SubscriptionStore,
)
from hub.ports.audit import AuditLog
from hub.ports.members import MemberRegistry
from hub.ports.metrics import ExposedMetrics, NoMetrics
from hub.ports.operators import LogInspector, OperationsStore
from hub.services.tokens import TokenService
from hub.settings import Settings
from subscriptions.ssrf import NetworkPolicy


class NoMetricsExposed(NoMetrics):
    """No metrics wired: ``/metrics`` answers with nothing."""

    def exposition(self) -> tuple[bytes, str]:
        return b"", "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class ApiContext:
    settings: Settings
    event_log: EventLog
    subscriptions: SubscriptionStore
    landscape: LandscapeReader
    network_policy: NetworkPolicy
    auth: TokenAuthenticator
    #: Name → "is it up?" for /readyz: the broker, the database and every role in this process.
    readiness: Callable[[], Awaitable[dict[str, bool]]]
    connectors: ConnectorStore | None = None
    imports: ImportStore | None = None
    #: Tells a connectors role in this process that work is due now (None: another process polls).
    wake_connectors: Callable[[], None] | None = None
    deliveries: DeliveryStore | None = None
    #: Connector run history (``GET /api/v1/connectors/{id}/runs``).
    runs: RunStore | None = None
    #: (organisatie, scope) → the context a connector runs in (``POST /connectors/{id}/test``).
    connector_context: Callable[[str, str], ConnectorContext] | None = None
    tokens: TokenService | None = None
    audit: AuditLog | None = None
    #: Operator views (status, DLQ): the log as operators see it and the store's summary.
    log_inspector: LogInspector | None = None
    operations: OperationsStore | None = None
    #: The projector members' records of their partitions (the status shows them on Tansu).
    members: MemberRegistry | None = None
    metrics: ExposedMetrics = field(default_factory=NoMetricsExposed)


async def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx
