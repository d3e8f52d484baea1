"""A dispatcher that starts frees the leases of a dispatcher whose session is gone, and only
those (``hub/adapters/postgres/lease_holders.py``, migration 0022).

Before, a delivery claimed by a dispatcher that died (SIGKILL, the OOM killer, the work child
that ``run`` stops in a hurry when the embedded broker died) waited for its lease to end, 60 s
by default, before another dispatcher sent it. On the real PostgreSQL: the holders' advisory
locks are its sessions'."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.lease_holders import LeaseHolder
from hub.adapters.postgres.outbox import PostgresOutbox
from hub.adapters.postgres.projection import PostgresProjectionStore
from hub.ports import LoggedEvent
from hub.services.projection import apply_events
from tests.contract.delivery_harness import HUB, event
from tests.integration.test_outbox_round_trips import _subscription

LEASE = 60.0  # the default: far longer than the test


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2, pre_ping=False)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _claimed_by(holder: LeaseHolder, engine: AsyncEngine, sub: object, n: int) -> list[str]:
    outbox = PostgresOutbox(engine, source_urn=HUB, holder=holder.key)
    return [c.event_id for c in await outbox.claim(n, LEASE, {sub: n})]  # type: ignore[dict-item]


async def test_a_starting_dispatcher_frees_the_leases_of_one_whose_session_is_gone_and_no_others(
    database_url: str, engine: AsyncEngine
) -> None:
    sub = await _subscription(engine, 0)
    logged = [LoggedEvent(event(f"k{n}", n), 0, n) for n in range(4)]
    await apply_events(PostgresProjectionStore(engine), logged, None)
    dead, alive, starting = LeaseHolder(database_url), LeaseHolder(database_url), LeaseHolder(database_url)
    try:
        assert await dead.start() == 0 and await alive.start() == 0
        of_dead = await _claimed_by(dead, engine, sub, 2)
        of_alive = await _claimed_by(alive, engine, sub, 2)
        assert len(of_dead) == len(of_alive) == 2
        await dead.close()  # its session ends, as when its process is killed
        outbox = PostgresOutbox(engine, source_urn=HUB)
        assert await outbox.claim(10, LEASE, {sub: 10}) == []  # all four leased

        assert await starting.start() == 2
        again = [c.event_id for c in await outbox.claim(10, LEASE, {sub: 10})]
        assert sorted(again) == sorted(of_dead)  # at once, not after 60 s; the live one's stay
    finally:
        for holder in (dead, alive, starting):
            await holder.close()
