"""An idle connector runner looks for work with one statement and claims only when there is some
(issue 17: idle CPU); what becomes due is still claimed at the next poll, without a wake-up.

Its poll used to be two claim transactions (imports, then connectors) every ``poll_seconds``,
four round trips each: most of an idle API child's CPU.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

from hub.adapters.memory import (
    InMemoryConnectorStore,
    InMemoryConnectorTables,
    InMemoryEventLog,
    InMemoryFingerprintStore,
    InMemoryImportStore,
)
from hub.ports import ConnectorRecord, ImportRecord
from hub.services.connectors import ConnectorRunner
from hub.settings import ConnectorSettings

HERE = "urn:nld:oin:00000001001234567000:systeem:hub"


class Looks:
    """The tables' clock, which every look and claim reads: counts them, so a test can wait
    for several polls to have happened (whatever each poll does)."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = asyncio.Event()

    def __call__(self) -> datetime:
        self.count += 1
        self.changed.set()
        return datetime.now(UTC)

    async def at_least(self, n: int) -> None:
        while self.count < n:
            self.changed.clear()
            await self.changed.wait()


class CountedImports(InMemoryImportStore):
    claims = 0

    async def claim(self) -> ImportRecord | None:
        self.claims += 1
        return await super().claim()


class CountedConnectors(InMemoryConnectorStore):
    claims = 0

    async def claim_due(self, limit: int) -> list[ConnectorRecord]:
        self.claims += 1
        return await super().claim_due(limit)


async def test_an_idle_runner_claims_nothing_and_still_claims_an_import_queued_without_a_wake_up(
    tmp_path: Path,
) -> None:
    looks = Looks()
    tables = InMemoryConnectorTables(clock=looks)
    imports, connectors = CountedImports(tables), CountedConnectors(tables)
    runner = ConnectorRunner(
        connectors, imports, InMemoryFingerprintStore(tables), InMemoryEventLog(),
        ConnectorSettings(poll_seconds=0.01), hub_urn=HERE, data_dir=tmp_path,
    )  # fmt: skip
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        await asyncio.wait_for(looks.at_least(20), 20)  # many polls, nothing to do
        assert (imports.claims, connectors.claims) == (0, 0)

        # The marker: an import queued by another process (no wake-up here) is claimed by a poll.
        queued = await imports.create(
            import_id=uuid.uuid4(), organisatie="org-1", objecttype="gebruik", mode="incremental",
            filename="a.csv", path=str(tmp_path / "a.csv"), options={},
        )  # fmt: skip
        while (await imports.get(queued.id)).status == "queued":
            await asyncio.wait_for(looks.at_least(looks.count + 1), 20)
        assert imports.claims >= 1
    finally:
        stop.set()
        await asyncio.wait_for(running, 20)
