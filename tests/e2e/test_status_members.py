"""The projector's members and their partitions in ``GET /api/v1/status`` on the real broker
and database. Tansu describes the group without assignments, so these partitions come from
each member's own record (``hub.ports.members``), joined with the broker's live members."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.members import PostgresMemberRegistry
from hub.bootstrap import HubProcess
from hub.settings import Settings
from tests.support.hub_api import eventually

pytestmark = pytest.mark.e2e


async def _members(client: httpx.AsyncClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/status", headers=auth)
    assert response.status_code == 200, response.text
    members: list[dict[str, Any]] = response.json()["log"]["members"]
    return members


async def test_a_running_projector_shows_in_the_status_with_every_partition(
    client: httpx.AsyncClient, settings: Settings, auth: dict[str, str]
) -> None:
    everything = list(range(settings.kafka.partitions))
    seen: list[dict[str, Any]] = []

    async def one_member_owns_all() -> bool:
        seen[:] = await _members(client, auth)
        return len(seen) == 1 and seen[0]["partitions"] == everything

    await eventually(one_member_owns_all, timeout=20, what=f"one member with {everything}")
    member = seen[0]
    assert member["memberId"].startswith(member["clientId"] + "-")
    assert member["host"] and isinstance(member["pid"], int)
    assert member["lag"] == 0


@pytest.fixture
async def projectors(settings: Settings) -> AsyncIterator[list[HubProcess]]:
    """Two processes that run only the projector (one member each), stopped at the end."""
    assert settings.kafka.bootstrap and settings.database_url
    started: list[HubProcess] = []
    try:
        for _ in range(2):
            process = HubProcess(settings, settings.kafka.bootstrap, settings.database_url, ("projector",))
            await process.start()
            started.append(process)
        for process in started:
            await process.wait_started()
        yield started
    finally:
        for process in started:
            await process.shutdown(drain_timeout=15)


async def test_two_projector_processes_split_the_partitions_and_the_survivor_takes_them_all(
    settings: Settings, auth: dict[str, str], projectors: list[HubProcess]
) -> None:
    assert settings.kafka.bootstrap and settings.database_url
    api = HubProcess(settings, settings.kafka.bootstrap, settings.database_url, ("api",))
    await api.start()
    try:
        await api.wait_started()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.api_port}", timeout=30) as client:
            everything = list(range(settings.kafka.partitions))
            seen: list[dict[str, Any]] = []

            async def split() -> bool:
                seen[:] = await _members(client, auth)
                owned = [p for m in seen for p in m["partitions"]]
                return len(seen) == 2 and sorted(owned) == everything and all(m["partitions"] for m in seen)

            await eventually(split, timeout=30, what=f"two members splitting {everything}")
            assert len({m["memberId"] for m in seen}) == 2
            assert len({m["clientId"] for m in seen}) == 2

            leaving = projectors.pop(0)
            gone = leaving.log_consumers[0].client_id
            assert gone in {m["clientId"] for m in seen}
            await leaving.shutdown(drain_timeout=15)
            before = {m["memberId"] for m in seen}

            async def survivor_owns_all() -> bool:
                seen[:] = await _members(client, auth)
                return len(seen) == 1 and seen[0]["partitions"] == everything

            await eventually(survivor_owns_all, timeout=30, what=f"one member with {everything}")
            assert seen[0]["memberId"] in before  # the survivor, not a newcomer
            assert seen[0]["clientId"] != gone
        # the stopped consumer forgot its record; the survivor's says what the status showed
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            rows = await PostgresMemberRegistry(engine).recorded()
        finally:
            await engine.dispose()
        assert [(r.client_id, list(r.partitions)) for r in rows] == [(seen[0]["clientId"], everything)]
    finally:
        await api.shutdown(drain_timeout=5)
