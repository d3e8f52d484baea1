"""The member registry's contract, run against the in-memory twin and PostgreSQL: a consumer's
record is replaced by its next report and gone once it is forgotten."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hub.adapters.memory import InMemoryMemberRegistry
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.members import PostgresMemberRegistry
from hub.ports.members import MemberRegistry


@pytest.fixture(params=["memory", "postgres"])
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[MemberRegistry]:
    if request.param == "memory":
        yield InMemoryMemberRegistry()
        return
    engine = create_engine(request.getfixturevalue("database_url"), pool_size=1)
    try:
        yield PostgresMemberRegistry(engine)
    finally:
        await engine.dispose()


async def _report(registry: MemberRegistry, client_id: str, *partitions: int) -> None:
    await registry.record(
        client_id=client_id, group="g", topic="events", host="web-1", pid=42, partitions=partitions
    )


async def test_a_report_replaces_the_consumers_previous_partitions(registry: MemberRegistry) -> None:
    await _report(registry, "c-1", 2, 0, 1)
    await _report(registry, "c-2")
    await _report(registry, "c-1", 1)
    found = await registry.recorded()
    assert [(r.client_id, r.group, r.topic, r.host, r.pid, r.partitions) for r in found] == [
        ("c-1", "g", "events", "web-1", 42, (1,)),
        ("c-2", "g", "events", "web-1", 42, ()),
    ]
    assert all(r.updated_at.tzinfo is not None for r in found)


async def test_a_forgotten_consumer_is_no_longer_recorded(registry: MemberRegistry) -> None:
    await _report(registry, "c-1", 0, 1, 2)
    await _report(registry, "c-2")
    await registry.forget("c-1")
    await registry.forget("never-recorded")
    assert [r.client_id for r in await registry.recorded()] == ["c-2"]
