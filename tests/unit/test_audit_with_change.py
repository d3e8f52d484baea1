"""The recorder and the stores share the work (issue 12): a management call's change carries
its audit entry into the store's own transaction, so a recorder that fails after the change
(the crash between the two that lost entries before) loses none, and a change is recorded
once, not by the store and again by the recorder. On the app wired with in-memory twins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hub.adapters.memory import (
    InMemoryConnectorStore,
    InMemoryConnectorTables,
    InMemoryDatabase,
    InMemoryEventLog,
    InMemoryProjectionStore,
    InMemorySubscriptionStore,
    InMemoryTokenStore,
)
from hub.adapters.memory.audit import InMemoryAuditLog
from hub.api.app import create_app
from hub.api.auth import TokenAuthenticator
from hub.api.context import ApiContext
from hub.paging import Page
from hub.ports.audit import AuditEntry, AuditQuery
from hub.services.tokens import TokenService
from hub.settings import Settings
from subscriptions.ssrf import NetworkPolicy

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class CrashingRecorder(InMemoryAuditLog):
    """The recorder's own write fails, as a crash right after the change would lose it."""

    async def record(self, entry: AuditEntry) -> None:
        raise RuntimeError("the process died before the recorder wrote")


@dataclass
class App:
    http: httpx.AsyncClient
    trail: InMemoryAuditLog  # the audit table the stores write to

    async def entries(self) -> list[AuditEntry]:
        page: Page[AuditEntry] = await self.trail.list(AuditQuery(), limit=100, cursor=None)
        return list(reversed(page.items))


async def _ready() -> dict[str, bool]:
    return {"database": True}


async def _app(tmp_path: Path, crashing: bool) -> AsyncIterator[App]:
    trail = InMemoryAuditLog()
    settings = Settings(data_dir=tmp_path, admin_token=TOKEN)
    ctx = ApiContext(
        settings=settings,
        event_log=InMemoryEventLog(),
        subscriptions=InMemorySubscriptionStore(InMemoryDatabase(), trail),
        landscape=InMemoryProjectionStore(),  # type: ignore[arg-type]
        network_policy=NetworkPolicy.parse("127.0.0.1/32"),
        auth=TokenAuthenticator(TOKEN),
        readiness=_ready,
        connectors=InMemoryConnectorStore(InMemoryConnectorTables(), audit_log=trail),
        tokens=TokenService(InMemoryTokenStore(trail), landscape=None),
        audit=CrashingRecorder() if crashing else trail,
    )
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
        yield App(http, trail)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    async for a in _app(tmp_path, crashing=False):
        yield a


@pytest.fixture
async def crashing(tmp_path: Path) -> AsyncIterator[App]:
    async for a in _app(tmp_path, crashing=True):
        yield a


SUBSCRIPTION = {"sink": "https://sink.example/hook", "protocol": "HTTP", "validate": False}


async def test_a_change_keeps_its_entry_when_the_recorder_dies_after_it(crashing: App) -> None:
    created = await crashing.http.post("/api/v1/subscriptions", json=SUBSCRIPTION, headers=AUTH)
    assert created.status_code == 201, created.text
    path = f"/api/v1/subscriptions/{created.json()['id']}"
    token = await crashing.http.post(
        "/api/v1/tokens", json={"name": "beheer", "role": "gebruik-beheerder", "organisatie": "gem-a"},
        headers=AUTH,
    )  # fmt: skip
    assert token.status_code == 201, token.text
    assert (await crashing.http.delete(path, headers=AUTH)).status_code == 204

    entries = await crashing.entries()
    assert [(e.action, e.target, e.status) for e in entries] == [
        ("POST /api/v1/subscriptions", path, 201),
        ("POST /api/v1/tokens", f"/api/v1/tokens/{token.json()['id']}", 201),
        ("DELETE /api/v1/subscriptions/{subscription_id}", path, 204),
    ]
    first = entries[0]
    assert (first.actor_role, first.outcome) == ("functioneel-beheerder", "ok")
    assert first.request_id and "sink" in first.changes and "secret" not in first.changes


async def test_a_change_is_recorded_once_and_a_failed_one_by_the_recorder(app: App) -> None:
    created = await app.http.post("/api/v1/subscriptions", json=SUBSCRIPTION, headers=AUTH)
    assert created.status_code == 201, created.text
    path = f"/api/v1/subscriptions/{created.json()['id']}"
    patched = await app.http.patch(path, json={"types": ["nl.x.v1"]}, headers=AUTH)
    assert patched.status_code == 200, patched.text
    missing = "/api/v1/subscriptions/00000000-0000-0000-0000-000000000000"
    assert (await app.http.patch(missing, json={"types": ["nl.x.v1"]}, headers=AUTH)).status_code == 404

    entries = await app.entries()
    assert [(e.target, e.outcome, e.status) for e in entries] == [
        (path, "ok", 201),
        (path, "ok", 200),
        (missing, "failed", 404),
    ]
    assert patched.headers["x-request-id"] == entries[1].request_id
