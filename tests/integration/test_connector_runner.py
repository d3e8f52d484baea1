"""The connectors role on the real database (and broker): one failing connector never stops the
others and backs off; checkpoints advance only after the log acknowledged; an unchanged file is
skipped by its checkpoint; a stop ends a run at a batch boundary."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from hub.adapters.postgres.connectors import PostgresConnectorStore
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.imports import PostgresImportStore
from hub.bootstrap import connector_runner
from hub.errors import BrokerUnavailable
from hub.settings import ConnectorSettings, Settings
from schemas import CloudEvent
from tests.support.connectors import GEBRUIK_HEADER, ORG, harness, write_csv
from tests.support.hub_api import eventually

pytestmark = pytest.mark.integration


def rows(n: int) -> list[list[str]]:
    return [[f"g-{i}", ORG, f"app-{i}", "In productie", "1.0", ""] for i in range(n)]


def fast(settings: Settings, root: Path) -> Settings:
    return settings.model_copy(
        update={"connectors": ConnectorSettings(poll_seconds=0.1, file_roots=[root], backoff_seconds=60)}
    )


async def test_a_failing_connector_backs_off_and_the_others_still_run(
    settings: Settings, tmp_path: Path
) -> None:
    settings = fast(settings, tmp_path)
    good = write_csv(tmp_path / "good.csv", [GEBRUIK_HEADER, *rows(3)])
    async with harness(settings) as h:
        runner = h.runner
        broken = await h.connectors.create(
            kind="csv",
            organisatie=ORG,
            schedule_seconds=3600,
            enabled=True,
            config={"location": str(tmp_path / "missing.csv"), "objecttype": "gebruik"},
        )
        fine = await h.connectors.create(
            kind="csv",
            organisatie=ORG,
            schedule_seconds=3600,
            enabled=True,
            config={"location": str(good), "objecttype": "gebruik"},
        )
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))

        async def both_ran() -> bool:
            a, b = await h.connectors.get(broken.id), await h.connectors.get(fine.id)
            return a.last_error is not None and b.last_success_at is not None

        await eventually(both_ran, what="both connectors to have run")
        stop.set()
        await task
        a, b = await h.connectors.get(broken.id), await h.connectors.get(fine.id)

    assert a.failures == 1 and "missing.csv" in (a.last_error or "")
    assert 50 <= (a.next_run_at - datetime.now(UTC)).total_seconds() <= 61  # backoff, not the schedule
    assert b.events_published == 3 and b.last_error is None and b.failures == 0
    assert b.checkpoint is not None and b.checkpoint["complete"] is True
    assert (b.next_run_at - datetime.now(UTC)).total_seconds() > 3000


async def test_an_unchanged_file_is_skipped_by_its_checkpoint(settings: Settings, tmp_path: Path) -> None:
    settings = fast(settings, tmp_path)
    path = write_csv(tmp_path / "g.csv", [GEBRUIK_HEADER, *rows(4)])
    async with harness(settings) as h:
        record = await h.connectors.create(
            kind="csv",
            organisatie=ORG,
            schedule_seconds=3600,
            enabled=True,
            config={"location": str(path), "objecttype": "gebruik"},
        )
        [claimed] = await h.connectors.claim_due(5)
        await h.runner.run_connector(claimed)
        await h.connectors.request_run(record.id)
        [again] = await h.connectors.claim_due(5)
        await h.runner.run_connector(again)
        after = await h.connectors.get(record.id)

    assert after.events_published == 4
    assert after.last_counts is not None and after.last_counts["read"] == 0  # not even read


class RefusingLog:
    """An event log that never acknowledges (a broker outage)."""

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        raise BrokerUnavailable("no acknowledgement")


async def test_without_an_acknowledgement_neither_checkpoint_nor_fingerprints_advance(
    settings: Settings, tmp_path: Path
) -> None:
    settings = fast(settings, tmp_path)
    path = write_csv(tmp_path / "g.csv", [GEBRUIK_HEADER, *rows(4)])
    assert settings.database_url
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        store = PostgresConnectorStore(engine)
        runner = connector_runner(settings, engine, RefusingLog())
        record = await store.create(
            kind="csv",
            organisatie=ORG,
            schedule_seconds=3600,
            enabled=True,
            config={"location": str(path), "objecttype": "gebruik"},
        )
        [claimed] = await store.claim_due(1)
        await runner.run_connector(claimed)
        after = await store.get(record.id)
        async with engine.connect() as conn:
            stored = (await conn.execute(text("SELECT count(*) FROM connector_fingerprints"))).scalar_one()
    finally:
        await engine.dispose()

    assert after.checkpoint is None and after.events_published == 0
    assert after.failures == 1 and "acknowledge" in (after.last_error or "")
    assert stored == 0


class SlowLog:
    """An event log that takes its time acknowledging, and remembers what it acknowledged."""

    def __init__(self) -> None:
        self.acknowledged: list[CloudEvent] = []

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        await asyncio.sleep(0.3)
        self.acknowledged.extend(events)


async def test_a_stop_ends_an_import_at_a_batch_boundary_and_requeues_it(
    settings: Settings, tmp_path: Path
) -> None:
    settings = fast(settings, tmp_path)
    path = write_csv(tmp_path / "g.csv", [GEBRUIK_HEADER, *rows(25_000)])
    assert settings.database_url
    engine = create_engine(settings.database_url, pool_size=2)
    log = SlowLog()
    try:
        imports = PostgresImportStore(engine)
        runner = connector_runner(settings, engine, log)
        record = await imports.create(
            import_id=uuid.uuid4(),
            organisatie=ORG,
            objecttype="gebruik",
            mode="incremental",
            filename=path.name,
            path=str(path),
            options={},
        )
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        await eventually(lambda: _running(imports, record.id), what="the import to start")
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        after = await imports.get(record.id)
        async with engine.connect() as conn:
            stored = (await conn.execute(text("SELECT count(*) FROM connector_fingerprints"))).scalar_one()
    finally:
        await engine.dispose()

    assert after.status == "queued"  # another process, or this one restarted, takes it from here
    assert 0 < len(log.acknowledged) < 25_000
    assert stored == len(log.acknowledged)  # exactly what was acknowledged was recorded
    assert after.rows_read == len(log.acknowledged)


async def _running(imports: PostgresImportStore, import_id: uuid.UUID) -> bool:
    return (await imports.get(import_id)).rows_read > 0
