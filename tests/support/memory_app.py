"""The HTTP API on in-memory stores: ``create_app`` over ``httpx.ASGITransport``.

For tests of what the API itself answers (validation, problem+json errors, auth, paging):
no broker, no database, no server process, so each test starts in milliseconds. The twins
pass the same contract suites as their PostgreSQL adapters (``tests/contract/``), which is
what lets a test here stand in for one against the real stores.

Routers whose store has no twin yet (connectors, imports) get ``None`` in the context, as
in a process without that role; their tests stay on the real infrastructure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI

from hub.adapters.memory import (
    InMemoryDatabase,
    InMemoryDeliveryStore,
    InMemoryEventLog,
    InMemoryProjectionStore,
    InMemorySubscriptionStore,
)
from hub.api.app import create_app
from hub.api.auth import TokenAuthenticator
from hub.api.context import ApiContext
from hub.ports.audit import AuditLog
from hub.settings import DeliverySettings, Settings
from schemas.bindings import KafkaRecord
from subscriptions.ssrf import NetworkPolicy

ADMIN_TOKEN = "test-admin-token"


def memory_settings(data_dir: Path) -> Settings:
    """The e2e test settings (tests/conftest.py) less what only the infrastructure needs."""
    return Settings(
        data_dir=data_dir,
        http_port=0,
        admin_token=ADMIN_TOKEN,
        delivery=DeliverySettings(
            retry_schedule=[0.2, 0.4, 0.8],
            allow_networks=["127.0.0.0/8"],
            timeout_seconds=5,
            poll_seconds=0.5,
            slow_down_seconds=0.3,
        ),
    )


@dataclass
class MemoryApp:
    """The app, the stores behind it and a client on it."""

    app: FastAPI
    event_log: InMemoryEventLog
    database: InMemoryDatabase
    landscape: InMemoryProjectionStore
    client: httpx.AsyncClient

    def published(self) -> list[KafkaRecord]:
        """Every record on the log, partition by partition (an empty list: nothing published)."""
        return [record for partition in self.event_log.partitions for record in partition]


@asynccontextmanager
async def memory_app(settings: Settings, audit: AuditLog | None = None) -> AsyncIterator[MemoryApp]:
    """The app on in-memory stores; with ``audit``, the audit trail's recorder and reader too."""
    database = InMemoryDatabase()
    event_log = InMemoryEventLog(partitions=3)
    landscape = InMemoryProjectionStore()

    async def ready() -> dict[str, bool]:
        return {"broker": True, "database": True, "api": True}

    ctx = ApiContext(
        settings=settings,
        event_log=event_log,
        subscriptions=InMemorySubscriptionStore(database),
        landscape=landscape,
        network_policy=NetworkPolicy.parse(settings.delivery.allow_networks),
        auth=TokenAuthenticator(settings.admin_token or ADMIN_TOKEN),
        readiness=ready,
        deliveries=InMemoryDeliveryStore(database),
        audit=audit,
    )
    app = create_app(ctx)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test", timeout=30) as client:
        yield MemoryApp(app, event_log, database, landscape, client)
