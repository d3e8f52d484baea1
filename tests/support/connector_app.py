"""The HTTP API with the connector routes on in-memory stores, for tests of the connector
endpoints and of who may manage which connector (ownership, write-back): tokens are real API
tokens of the in-memory token store, and the connectors' outbound calls may reach loopback only
(where the fakes listen)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from hub.adapters.egress import egress
from hub.adapters.memory import (
    InMemoryConnectorStore,
    InMemoryConnectorTables,
    InMemoryDatabase,
    InMemoryEventLog,
    InMemoryProjectionStore,
    InMemoryRunStore,
    InMemorySubscriptionStore,
    InMemoryTokenStore,
)
from hub.api.app import create_app
from hub.api.auth import ADMIN, TokenAuthenticator
from hub.api.context import ApiContext
from hub.services.connectors import ConnectorContexts, organisatie_known
from hub.services.tokens import TokenLookup, TokenService
from hub.settings import ConnectorSettings, Settings
from subscriptions.ssrf import NetworkPolicy

ADMIN_TOKEN = "test-admin-token"
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LOOPBACK = "127.0.0.1/32"


@dataclass
class ConnectorApp:
    http: httpx.AsyncClient
    tokens: TokenService
    subscriptions: InMemorySubscriptionStore
    tables: InMemoryConnectorTables
    runs: InMemoryRunStore

    async def bearer(self, organisatie: str, role: str = "gebruik-beheerder") -> dict[str, str]:
        """The Authorization header of a new API token of ``role`` for ``organisatie``."""
        _, secret = await self.tokens.create(
            ADMIN, name=f"{role} {organisatie}", role=role, organisatie=organisatie, sources=[]
        )
        return {"Authorization": f"Bearer {secret}"}


@asynccontextmanager
async def connector_app(
    data_dir: Path, file_roots: tuple[Path, ...] = (), landscape: InMemoryProjectionStore | None = None
) -> AsyncIterator[ConnectorApp]:
    connectors = ConnectorSettings(allow_networks=[LOOPBACK], file_roots=list(file_roots))
    settings = Settings(data_dir=data_dir, admin_token=ADMIN_TOKEN, connectors=connectors)
    tables, tokens = InMemoryConnectorTables(), InMemoryTokenStore()
    landscape = landscape or InMemoryProjectionStore()
    subscriptions, runs = InMemorySubscriptionStore(InMemoryDatabase()), InMemoryRunStore(tables)
    service = TokenService(tokens, landscape=landscape)

    async def ready() -> dict[str, bool]:
        return {"database": True}

    ctx = ApiContext(
        settings=settings,
        event_log=InMemoryEventLog(),
        subscriptions=subscriptions,
        landscape=landscape,
        network_policy=NetworkPolicy.parse(LOOPBACK),
        auth=TokenAuthenticator(ADMIN_TOKEN, tokens=TokenLookup(tokens)),
        readiness=ready,
        connectors=InMemoryConnectorStore(tables),
        runs=runs,
        connector_context=ConnectorContexts(
            settings.connectors,
            data_dir,
            egress(NetworkPolicy.parse(LOOPBACK)),
            is_organisatie=organisatie_known(landscape),
        ),
        tokens=service,
    )
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
        yield ConnectorApp(http, service, subscriptions, tables, runs)
