"""A projector member records its partitions (for the status on Tansu) without holding up the
group's rebalance: the rebalance callback returns while PostgreSQL is still writing, the record
ends as the last assignment said, and a stopping member's delete comes after its last write."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from hub.adapters.kafka_membership import Membership
from hub.adapters.memory.members import InMemoryMemberRegistry


class HeldRegistry(InMemoryMemberRegistry):
    """Each record waits for ``release``, as a stalled PostgreSQL would."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.writing = asyncio.Event()

    async def record(self, **values: object) -> None:  # type: ignore[override]
        self.writing.set()
        await self.release.wait()
        await super().record(**values)  # type: ignore[arg-type]


async def test_a_rebalance_does_not_wait_for_the_record_and_the_record_ends_as_the_last_assignment() -> None:
    registry = HeldRegistry()
    membership = Membership(registry, "koppelhub-projector-abc", "koppelhub-projector", "events")

    async with asyncio.timeout(1):  # held writes: a callback that waited for them would time out
        await membership.on_partitions_assigned([TopicPartition("events", 0), TopicPartition("events", 3)])
        await registry.writing.wait()
        await membership.on_partitions_revoked([])
        await membership.on_partitions_assigned([TopicPartition("events", 1), TopicPartition("other", 2)])
    assert membership.assigned and await registry.recorded() == []

    registry.release.set()
    await membership.forget()  # waits for the writes, then deletes
    assert await registry.recorded() == []


async def test_the_latest_assignment_is_what_the_record_says() -> None:
    registry = HeldRegistry()
    membership = Membership(registry, "koppelhub-projector-abc", "koppelhub-projector", "events")
    await membership.on_partitions_assigned([TopicPartition("events", 0)])
    await registry.writing.wait()
    await membership.on_partitions_assigned([TopicPartition("events", 1), TopicPartition("events", 4)])
    registry.release.set()
    writer = membership._writer
    assert writer is not None
    await writer
    [record] = await registry.recorded()
    assert record.partitions == (1, 4) and record.client_id == "koppelhub-projector-abc"
