"""When the embedded broker dies, its in-memory log dies with it, and ``run`` starts a new, empty
one at the same address. A projector member that read the old log must commit nothing more: in
the new broker it would rejoin the group and commit its old positions, and the group would skip
every record below them (a CI run lost 16 of 110 acknowledged events so). So the process ends
its projector's members before the broker is back (:meth:`Projector.log_lost`), and ``run``
stops its work children first (:meth:`Children.stop_work`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, cast

from hub.adapters.memory import InMemoryEventLog
from hub.adapters.memory.log import InMemoryLogConsumer
from hub.bootstrap import HubProcess
from hub.children import Children, supervise
from hub.embedded import Infrastructure
from hub.ports import LogConsumer
from hub.serve import _watch
from hub.services.projector import Projector
from tests.unit.test_projector_replay import GROUP, GatedStore, archived, event


async def test_a_projector_whose_log_is_lost_commits_nothing_more_not_even_the_round_under_way() -> None:
    log, store = InMemoryEventLog(partitions=1), GatedStore()
    await log.publish([event("first")])
    stop = asyncio.Event()
    old = Projector(lambda: log.consumer(GROUP), store, log, derive=None)
    running = asyncio.create_task(old.run(stop))
    async with asyncio.timeout(5):
        assert await store.flushing.get() == ["first"]  # applied; its round waits for the flush
        await old.log_lost(within=5)
        assert not old.running  # every member left
        store.open()  # the round's flush would now succeed: it must not commit
        for _ in range(20):  # the turns a round needs to finish after its flush
            await asyncio.sleep(0)
        assert not running.done()  # the role stays up (not ready) until the process stops it
        # The group's next member reads the log from where the group committed: from the start.
        fresh, drained = GatedStore(), asyncio.Event()
        fresh.open()
        await log.publish([event("marker")])
        drained.set()
        successor = Projector(lambda: log.consumer(GROUP), fresh, log, derive=None)
        await successor.run(asyncio.Event(), drain=drained)
        stop.set()
        await running
    assert archived(fresh) == ["first", "marker"]  # with the old position committed: ["marker"]


class HeldCommit:
    """A member whose commit waits for :attr:`gate`, as aiokafka's waits for a coordinator while
    the broker is away (and then sends what it holds to whichever broker answers)."""

    def __init__(self, inner: InMemoryLogConsumer) -> None:
        self._inner, self.gate, self.waiting = inner, asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def commit(self, positions: Mapping[int, int]) -> bool:
        self.waiting.set()
        await self.gate.wait()
        return await self._inner.commit(positions)


async def test_a_commit_waiting_for_the_broker_when_the_log_is_lost_is_never_sent() -> None:
    log, store = InMemoryEventLog(partitions=1), GatedStore()
    store.open()
    await log.publish([event("first")])
    member = HeldCommit(log.consumer(GROUP))
    stop = asyncio.Event()
    old = Projector(lambda: cast(LogConsumer, member), store, log, derive=None)
    running = asyncio.create_task(old.run(stop))
    async with asyncio.timeout(5):
        await member.waiting.wait()  # flushed; its commit waits for the broker
        await old.log_lost(within=5)
        member.gate.set()  # the broker answers: a commit still waiting would now be sent
        for _ in range(20):
            await asyncio.sleep(0)
        assert log.committed(GROUP) == {}
        stop.set()
        await running  # ends cleanly: the member was not cancelled, only its commit


async def test_a_single_process_ends_its_projector_before_it_starts_the_dead_broker_again() -> None:
    calls: list[str] = []

    class Lost:
        async def log_lost(self, within: float) -> None:
            calls.append("projector.log_lost")

    class DeadBroker:
        def died(self) -> bool:
            return True

        def restart(self) -> bool:
            calls.append("broker.restart")
            return False  # still dead: the process exits 75

    infra = Infrastructure(kafka_bootstrap="127.0.0.1:9", database_url="postgresql://db/x")
    infra.broker = cast(Any, DeadBroker())
    hub = cast(HubProcess, SimpleNamespace(stop_intake=asyncio.Event(), projector=Lost()))
    died: list[str] = []
    await asyncio.wait_for(_watch(hub, infra, died), timeout=10)
    assert calls == ["projector.log_lost", "broker.restart"]
    assert died == ["broker"] and hub.stop_intake.is_set()


def test_run_stops_its_work_children_before_it_starts_the_dead_broker_again() -> None:
    calls: list[str] = []
    stop = threading.Event()

    class Kids:
        def stop_work(self) -> None:
            calls.append("children.stop_work")

        def restart(self) -> bool:
            calls.append("children.restart")
            stop.set()
            return True

        def tend(self) -> None:
            pass

    class DeadBroker:
        def died(self) -> bool:
            return not calls

        def restart(self) -> bool:
            calls.append("broker.restart")
            return True

    infra = Infrastructure(kafka_bootstrap="127.0.0.1:9", database_url="postgresql://db/x")
    infra.broker = cast(Any, DeadBroker())
    died: list[str] = []
    supervise(cast(Children, Kids()), infra, died, stop, lambda: bool(calls.append("topics")))
    assert calls == ["children.stop_work", "broker.restart", "topics", "children.restart"]
    assert died == []
