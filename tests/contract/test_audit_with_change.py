"""A change's audit entry is written in the change's own transaction (issue 12), on the
in-memory twins and PostgreSQL alike: every write of the token, subscription and connector
stores takes an ``audit=`` entry; a change that is made always has its entry (a create's
``{id}`` filled in with the new object's id), a change that fails leaves none."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from hub.adapters.memory import (
    InMemoryConnectorStore,
    InMemoryConnectorTables,
    InMemoryDatabase,
    InMemoryDeliveryStore,
    InMemoryImportStore,
    InMemoryProjectionStore,
    InMemorySubscriptionStore,
    InMemoryTokenStore,
)
from hub.adapters.memory.audit import InMemoryAuditLog
from hub.adapters.postgres.audit import PostgresAuditLog
from hub.adapters.postgres.connectors import PostgresConnectorStore
from hub.adapters.postgres.deliveries import PostgresDeliveryStore
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.imports import PostgresImportStore
from hub.adapters.postgres.landscape import PostgresLandscapeStore
from hub.adapters.postgres.subscriptions import PostgresSubscriptionStore
from hub.adapters.postgres.tokens import PostgresTokenStore
from hub.errors import NotFound, PermanentError
from hub.ports import ConnectorStore, DeliveryStore, ImportStore, RebuildableStore, SubscriptionStore
from hub.ports.audit import AuditEntry, AuditLog, AuditQuery
from hub.ports.tokens import TokenStore
from hub.services.landscape import rebuild


@dataclass
class Stores:
    tokens: TokenStore
    subscriptions: SubscriptionStore
    connectors: ConnectorStore
    audit: AuditLog
    deliveries: DeliveryStore
    imports: ImportStore
    landscape: RebuildableStore

    async def targets(self) -> list[str]:
        """Every entry's target, oldest first."""
        page = await self.audit.list(AuditQuery(), limit=100, cursor=None)
        return [e.target for e in reversed(page.items)]


@pytest.fixture(params=["memory", "postgres"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "memory":
        log, db = InMemoryAuditLog(), InMemoryDatabase()
        yield Stores(
            InMemoryTokenStore(log),
            InMemorySubscriptionStore(db, log),
            InMemoryConnectorStore(InMemoryConnectorTables(), audit_log=log),
            log,
            InMemoryDeliveryStore(db, log),
            InMemoryImportStore(InMemoryConnectorTables(), audit_log=log),
            InMemoryProjectionStore(audit_log=log),
        )
        return
    engine = create_engine(request.getfixturevalue("database_url"), pool_size=2)
    try:
        yield Stores(
            PostgresTokenStore(engine),
            PostgresSubscriptionStore(engine),
            PostgresConnectorStore(engine),
            PostgresAuditLog(engine),
            PostgresDeliveryStore(engine),
            PostgresImportStore(engine),
            PostgresLandscapeStore(engine),
        )
    finally:
        await engine.dispose()


def entry(action: str, target: str) -> AuditEntry:
    return AuditEntry(action=action, target=target, outcome="ok", status=200, actor_name="beheer-a",
                      actor_role="functioneel-beheerder", changes=["name"])  # fmt: skip


async def _subscription(stores: Stores, audit: AuditEntry | None = None, **options: object) -> uuid.UUID:
    record = await stores.subscriptions.create(
        sink="https://sink.example/hook", protocol="HTTP", source=None, types=None, filters=[],
        headers={}, config={}, secret="s" * 32, audit=audit, **options,
    )  # fmt: skip
    return record.id


async def test_every_change_has_its_entry_written_with_it_and_a_create_names_the_new_object(
    stores: Stores,
) -> None:
    token = await stores.tokens.create(
        name="t", role="systeem", organisatie="gem-a", sources=["urn:a"], expires_at=None,
        secret_hash=uuid.uuid4().hex, created_by="admin", audit=entry("POST", "/api/v1/tokens/{id}"),
    )  # fmt: skip
    await stores.tokens.revoke(token.id, audit=entry("DELETE", f"/api/v1/tokens/{token.id}"))
    sid = await _subscription(stores, entry("POST", "/api/v1/subscriptions/{id}"))
    s = f"/api/v1/subscriptions/{sid}"
    await stores.subscriptions.update(sid, {"types": ["x.v1"]}, enabled=False, audit=entry("PATCH", s))
    await stores.subscriptions.rotate_secret(sid, "n" * 32, 60, audit=entry("POST", s))
    await stores.subscriptions.delete(sid, audit=entry("DELETE", s))
    connector = await stores.connectors.create(
        kind="csv", organisatie="gem-a", config={}, schedule_seconds=3600, enabled=False,
        audit=entry("POST", "/api/v1/connectors/{id}"),
    )  # fmt: skip
    c = f"/api/v1/connectors/{connector.id}"
    await stores.connectors.update(connector.id, audit=entry("PATCH", c), schedule_seconds=7200)
    await stores.connectors.request_run(connector.id, audit=entry("POST", c))
    await stores.connectors.delete(connector.id, audit=entry("DELETE", c))

    t = f"/api/v1/tokens/{token.id}"
    assert await stores.targets() == [t, t, s, s, s, s, c, c, c, c]


async def test_a_change_that_fails_leaves_no_entry_and_a_write_without_one_adds_none(stores: Stores) -> None:
    unknown = uuid.uuid4()
    taken = await _subscription(stores)  # no entry: nothing recorded
    with pytest.raises(PermanentError):
        await _subscription(stores, entry("POST", "/api/v1/subscriptions/{id}"), id=taken)
    failing = [
        stores.tokens.revoke(unknown, audit=entry("DELETE", "t")),
        stores.subscriptions.update(unknown, {"types": ["x.v1"]}, audit=entry("PATCH", "s")),
        stores.subscriptions.rotate_secret(unknown, "n" * 32, 60, audit=entry("POST", "s")),
        stores.subscriptions.delete(unknown, audit=entry("DELETE", "s")),
        stores.connectors.update(unknown, audit=entry("PATCH", "c"), schedule_seconds=60),
        stores.connectors.delete(unknown, audit=entry("DELETE", "c")),
        stores.connectors.request_run(unknown, audit=entry("POST", "c")),
    ]
    for write in failing:
        with pytest.raises(NotFound):
            await write

    assert await stores.targets() == []


async def test_delivery_operations_write_their_entry_with_them_and_none_when_they_fail(
    stores: Stores,
) -> None:
    sid = await _subscription(stores)
    s = f"/api/v1/subscriptions/{sid}"
    since = datetime.now(UTC) - timedelta(days=1)
    await stores.deliveries.replay(sid, since, None, audit=entry("POST replay", s))
    await stores.deliveries.recover(sid, since, audit=entry("POST recover", s))
    unknown = uuid.uuid4()
    failing = [
        stores.deliveries.retry(sid, unknown, audit=entry("POST retry", "d")),
        stores.deliveries.replay(unknown, since, None, audit=entry("POST replay", "r")),
        stores.deliveries.recover(unknown, since, audit=entry("POST recover", "r")),
    ]
    for write in failing:
        with pytest.raises(NotFound):
            await write

    assert await stores.targets() == [s, s]


async def test_an_import_is_queued_with_its_entry_and_a_refused_one_leaves_none(stores: Stores) -> None:
    import_id = uuid.uuid4()
    values = dict(import_id=import_id, organisatie="gem-a", objecttype="gebruik", mode="incremental",
                  filename="a.csv", path="/tmp/a.csv", options={})  # fmt: skip
    await stores.imports.create(**values, audit=entry("POST", "/api/v1/imports/{id}"))  # type: ignore[arg-type]
    with pytest.raises(PermanentError):  # the same id again
        await stores.imports.create(**values, audit=entry("POST", "/api/v1/imports/{id}"))  # type: ignore[arg-type]

    assert await stores.targets() == [f"/api/v1/imports/{import_id}"]


async def test_a_rebuild_writes_its_entry_in_its_transaction_and_a_failed_one_leaves_none(
    stores: Stores,
) -> None:
    await rebuild(stores.landscape, audit=entry("koppelhub rebuild", "landscape"))
    with pytest.raises(RuntimeError):
        async with stores.landscape.rebuilding(audit=entry("koppelhub rebuild", "failed")):
            raise RuntimeError("the replay failed half-way")

    assert await stores.targets() == ["landscape"]
