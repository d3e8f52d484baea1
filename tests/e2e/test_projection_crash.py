"""A PostgreSQL crash really loses the projector's last asynchronous commits, and the projector
applies them again (tests/unit/test_projector_replay.py has the cases on the twins).

A private embedded PostgreSQL whose WAL writer flushes only every 10 s, so the batch's commit
is certainly lost when a process of it is killed (the test checks that first); the log is the
in-memory one. Two crashes: the postmaster killed (the hub starts it again), and only the WAL
writer killed (the postmaster runs crash recovery and stays up, with its start time: an
incarnation told by ``pg_postmaster_start_time()`` missed this one). Before the fix the flush
after the crash succeeded and the positions past the lost batch were committed: "first" was
never projected."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.memory import InMemoryEventLog
from hub.adapters.postgres.engine import create_engine, migrate, projection_engine
from hub.adapters.postgres.projection import PostgresProjectionStore
from hub.embedded import EmbeddedPostgres
from hub.services.projector import Projector
from schemas import CloudEvent
from tests.e2e.test_outages import gone, postmaster_pid
from tests.e2e.test_restarts import Hub, Publisher, projecting, ride_out
from tests.support.hub_api import eventually

pytestmark = pytest.mark.e2e

GROUP = "koppelhub-projector"
ARCHIVED = text("SELECT event_id FROM event_archive ORDER BY seq")


class GatedStore(PostgresProjectionStore):
    """Its flushes after the first (the member's, before it reads) wait for :attr:`gate`; each
    says when it begins (:attr:`flushing`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.gate, self.flushing, self.flushes = asyncio.Event(), asyncio.Queue[int](), 0

    async def durable(self) -> str:
        self.flushes += 1
        if self.flushes > 1:
            self.flushing.put_nowait(self.flushes)
            await self.gate.wait()
        return await super().durable()


def event(event_id: str) -> CloudEvent:
    return CloudEvent(
        specversion="1.0", id=event_id, source="urn:nld:test", type="nl.test.event.v1", subject="k", data={}
    )


async def archived(url: str) -> list[str]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return [row[0] for row in await conn.execute(ARCHIVED)]
    finally:
        await engine.dispose()


async def reachable(url: str, within: float = 60) -> None:
    """Wait until PostgreSQL answers (after its crash recovery)."""
    deadline = time.monotonic() + within
    while True:
        try:
            await archived(url)
            return
        except (DBAPIError, OSError):
            assert time.monotonic() < deadline, "PostgreSQL did not come back"
            await asyncio.sleep(0.2)


def kill(data_dir: Path, victim: str) -> None:
    """SIGKILL the postmaster, or one of its server processes: then the postmaster itself runs
    crash recovery and keeps running (and its start time)."""
    postmaster = psutil.Process(postmaster_pid(data_dir))
    if victim == "walwriter":
        target = next(c for c in postmaster.children() if "walwriter" in " ".join(c.cmdline()))
    else:
        target = postmaster
    target.kill()
    assert gone(target.pid, 30)
    if target is not postmaster:  # it recovers by itself: no restart, the same start time
        assert postmaster.is_running() and postmaster_pid(data_dir) == postmaster.pid


@pytest.mark.parametrize("victim", ["postmaster", "walwriter"])
async def test_a_batch_whose_commit_a_postgresql_crash_lost_is_projected_again(
    tmp_path: Path, victim: str
) -> None:
    data = tmp_path / "postgres"
    pg = EmbeddedPostgres(data)
    url = await asyncio.to_thread(pg.start, follow_parent=False)
    try:
        await asyncio.to_thread(migrate, url)
        admin = create_engine(url, pool_size=1).execution_options(isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text("ALTER SYSTEM SET wal_writer_delay = '10s'"))
            await conn.execute(text("SELECT pg_reload_conf()"))
        await admin.dispose()

        engine = projection_engine(url, 1)
        store = GatedStore(engine)
        log, stop, drained = InMemoryEventLog(partitions=1), asyncio.Event(), asyncio.Event()
        await log.publish([event("first")])
        running = asyncio.create_task(
            Projector(lambda: log.consumer(GROUP), store, log, derive=None).run(stop, drain=drained)
        )
        async with asyncio.timeout(120):
            await store.flushing.get()  # "first" is committed, not yet flushed
            assert await archived(url) == ["first"]
            await asyncio.to_thread(kill, tmp_path, victim)
            await asyncio.to_thread(pg.tend)  # a dead postmaster is started again
            await reachable(url)  # after crash recovery
            assert await archived(url) == [], "the crash did not lose the commit: this test proves nothing"
            store.gate.set()  # flushes now succeed (the first on a dead connection fails)
            await log.publish([event("second")])
            drained.set()
            await running
        await engine.dispose()
        assert sorted(await archived(url)) == ["first", "second"]
        assert log.committed(GROUP) == {0: 2}
    finally:
        await asyncio.to_thread(pg.stop)


async def test_a_hub_under_load_rides_out_a_crash_recovery_of_postgresql_without_a_restart(
    tmp_path: Path,
) -> None:
    """The whole hub (`koppelhub run`, publishing all the time): one PostgreSQL server process
    killed, the postmaster recovers by itself; every acknowledged event is archived once and
    delivered (:func:`tests.e2e.test_restarts.ride_out`)."""

    async def outage(hub: Hub, publisher: Publisher) -> None:
        await eventually(lambda: projecting(hub), timeout=60, what="the projector committing")
        postmaster = postmaster_pid(tmp_path)
        await asyncio.to_thread(kill, tmp_path, "walwriter")
        await hub.ready(within=60)
        assert postmaster_pid(tmp_path) == postmaster  # recovered, not restarted

    await ride_out(tmp_path, outage, KOPPELHUB_LOG_LEVEL="info")
    said = (tmp_path / "run.err").read_text()
    assert "projection_read_again" in said, "no batch was in flight at the crash: it tested little"
