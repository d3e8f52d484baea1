"""When the projector's member commits its log positions (issue 17: CPU per event at a low
rate): the rounds of :class:`hub.services.projector_commits.Committer`, on the in-memory log
and store. What is committed after what is pinned in tests/unit/test_projector_policy.py."""

from __future__ import annotations

import asyncio

import pytest

from hub.adapters.memory import InMemoryEventLog, InMemoryProjectionStore
from hub.services import projector_commits
from hub.services.projector_commits import Committer
from tests.unit.test_projector_replay import event

GROUP = "koppelhub-projector"


class CountingStore(InMemoryProjectionStore):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    async def durable(self) -> str:
        self.flushes += 1
        return self.incarnation


async def test_batches_applied_while_a_round_gathers_share_one_flush_and_one_commit_and_leaving_does_not_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(projector_commits, "GATHER_SECONDS", 3600.0)  # only leaving ends the gathering
    log, store = InMemoryEventLog(partitions=2), CountingStore()
    consumer = log.consumer(GROUP)
    await consumer.start()
    await log.publish([event(f"e-{n}", f"k{n}") for n in range(40)])
    handed = await consumer.poll(max_records=100, timeout_s=1)  # a member commits what it read
    assert all(sum(r.partition == p for r in handed) >= 5 for p in (0, 1))
    committer = Committer(consumer, store)

    for after in ({0: 1}, {0: 2}, {1: 5}, {0: 3}):  # one batch each, the round running between them
        committer.behind({p: (a - 1, a) for p, a in after.items()}, store.incarnation)
        for _ in range(5):
            await asyncio.sleep(0)
    assert (store.flushes, log.committed(GROUP)) == (0, {})  # still gathering
    async with asyncio.timeout(5):
        await committer.done()

    assert (store.flushes, log.committed(GROUP)) == (1, {0: 3, 1: 5})
