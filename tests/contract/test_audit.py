"""The audit trail's contract, on the in-memory twin and PostgreSQL: append, read newest first
with filters and a cursor, and retention as the only removal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from hub.adapters.memory.audit import InMemoryAuditLog
from hub.adapters.postgres.audit import PostgresAuditLog, audit_log
from hub.adapters.postgres.engine import create_engine
from hub.ports.audit import AuditEntry, AuditLog, AuditQuery


@pytest.fixture(params=["memory", "postgres"])
async def trail(request: pytest.FixtureRequest) -> AsyncIterator[tuple[AuditLog, object]]:
    if request.param == "memory":
        clock = {"now": datetime.now(UTC)}
        memory = InMemoryAuditLog(lambda: clock["now"])

        async def age_memory(days: float) -> None:
            clock["now"] = datetime.now(UTC) + timedelta(days=days)  # later entries are newer

        yield memory, age_memory
        return
    engine = create_engine(request.getfixturevalue("database_url"), pool_size=2)

    async def age_postgres(days: float) -> None:
        async with engine.begin() as conn:
            await conn.execute(update(audit_log).values(time=audit_log.c.time - timedelta(days=days)))

    try:
        yield PostgresAuditLog(engine), age_postgres
    finally:
        await engine.dispose()


def entry(
    action: str, target: str, actor: str = "beheer-a", org: str | None = "gem-a", **more: object
) -> AuditEntry:
    return AuditEntry(action=action, target=target, outcome="ok", status=200, actor_name=actor,
                      actor_role="gebruik-beheerder", actor_organisatie=org, actor_credential=f"t-{actor}",
                      **more)  # type: ignore[arg-type]  # fmt: skip


async def test_entries_read_back_newest_first_filtered_and_paged(trail: tuple[AuditLog, object]) -> None:
    log, _ = trail
    await log.record(entry("POST /api/v1/connectors", "/api/v1/connectors/c1", changes=["config", "kind"]))
    await log.record(
        entry("PATCH /api/v1/connectors/{connector_id}", "/api/v1/connectors/c1", changes=["config"])
    )
    await log.record(
        entry("DELETE /api/v1/tokens/{token_id}", "/api/v1/tokens/t1", actor="beheer-b", org="gem-b")
    )

    page = await log.list(AuditQuery(), limit=2, cursor=None)
    assert [e.target for e in page.items] == ["/api/v1/tokens/t1", "/api/v1/connectors/c1"]
    assert page.next_cursor is not None
    rest = await log.list(AuditQuery(), limit=2, cursor=page.next_cursor)
    assert [e.action for e in rest.items] == ["POST /api/v1/connectors"] and rest.next_cursor is None
    assert rest.items[0].changes == ["config", "kind"] and rest.items[0].time is not None

    koppeling = await log.list(AuditQuery(target="/api/v1/connectors/c1"), limit=10, cursor=None)
    assert [e.action.split()[0] for e in koppeling.items] == ["PATCH", "POST"]
    assert len((await log.list(AuditQuery(actor="t-beheer-b"), limit=10, cursor=None)).items) == 1
    assert len((await log.list(AuditQuery(organisatie="gem-a"), limit=10, cursor=None)).items) == 2
    future = datetime.now(UTC) + timedelta(days=1)
    assert (await log.list(AuditQuery(since=future), limit=10, cursor=None)).items == []


async def test_retention_removes_only_entries_older_than_the_limit(trail: tuple[AuditLog, object]) -> None:
    log, age = trail
    await log.record(entry("POST /api/v1/tokens", "/api/v1/tokens/old"))
    await age(400)  # type: ignore[operator]
    await log.record(entry("POST /api/v1/tokens", "/api/v1/tokens/new"))
    assert await log.cleanup(older_than_days=365) == 1
    assert [e.target for e in (await log.list(AuditQuery(), limit=10, cursor=None)).items] == [
        "/api/v1/tokens/new"
    ]
