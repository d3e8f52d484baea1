"""The log's half of ``GET /api/v1/status`` is read once for the calls that come together or
within a second of each other (:func:`hub.services.status.shared_log_status`); a failed read
is not kept, and a redrive makes the next status read the log again."""

from __future__ import annotations

import asyncio

from hub.adapters.memory import InMemoryEventLog
from hub.adapters.memory.operations import InMemoryLogInspector
from hub.errors import BrokerUnavailable
from hub.ports.operators import LogStatus
from hub.services.status import forget_log_status, shared_log_status


class Counting(InMemoryLogInspector):
    """The in-memory inspector that counts its reads and can be held open or made to fail."""

    def __init__(self, log: InMemoryEventLog) -> None:
        super().__init__(log, dlq_topic="events.dlq")
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def status(self) -> LogStatus:
        self.reads += 1
        await self.gate.wait()
        if self.fail:
            raise BrokerUnavailable("cannot reach Kafka")
        return await super().status()


async def test_concurrent_status_calls_share_one_read_of_the_log() -> None:
    log = Counting(InMemoryEventLog(partitions=2))
    log.gate.clear()
    calls = [asyncio.ensure_future(shared_log_status(log)) for _ in range(20)]
    await asyncio.sleep(0)
    log.gate.set()
    answers = await asyncio.gather(*calls)
    assert log.reads == 1
    assert all(a is answers[0] for a in answers)


async def test_a_read_serves_the_calls_within_its_ttl_and_is_renewed_after() -> None:
    log = Counting(InMemoryEventLog(partitions=2))
    await shared_log_status(log, ttl=60)
    await shared_log_status(log, ttl=60)
    assert log.reads == 1
    await shared_log_status(log, ttl=0)
    assert log.reads == 2


async def test_a_failed_read_is_not_kept() -> None:
    log = Counting(InMemoryEventLog(partitions=2))
    log.fail = True
    for _ in range(2):
        try:
            await shared_log_status(log, ttl=60)
        except BrokerUnavailable:
            pass
    assert log.reads == 2
    log.fail = False
    await shared_log_status(log, ttl=60)
    assert log.reads == 3


async def test_forgetting_the_read_makes_the_next_call_read_the_log() -> None:
    log = Counting(InMemoryEventLog(partitions=2))
    await shared_log_status(log, ttl=60)
    forget_log_status(log)
    await shared_log_status(log, ttl=60)
    assert log.reads == 2
