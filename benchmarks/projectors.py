"""The projector(s) that ``benchmarks.projection`` measures: in the benchmark's own process
(``--processes 1``, the figures of earlier sessions) or in N child processes, as ``koppelhub run``
with ``KOPPELHUB_WORK_PROCESSES=N`` runs it.

The children are started with multiprocessing's ``spawn`` (a fresh interpreter each, as
``run``'s children are; a fork would inherit the parent's event loop and broker clients). Each
builds the same :class:`~hub.services.projector.Projector` with ``members`` consumers in the one
consumer group, says it is ready, and starts consuming only when the parent has seen every child
ready, so they join the group together rather than one taking every partition first. Each child
copies its :class:`~hub.services.projector.ProjectorStats` into a shared array every 10 ms; the
parent sums them. ``applied`` counts only events new to the archive, so the sum reaches the
number of events exactly once every event is stored, whatever a rebalance delivered twice.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from dataclasses import dataclass
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Event
from typing import Any, Protocol

from hub.adapters.kafka import KafkaEventLog
from hub.adapters.kafka_consumer import KafkaLogConsumer
from hub.adapters.postgres.engine import projection_engine
from hub.adapters.postgres.projection import PostgresProjectionStore
from hub.logging import configure_logging
from hub.services.landscape import DerivedEvents
from hub.services.projector import Projector
from hub.settings import KafkaSettings, Settings

#: The counters each child shares with the parent, in this order.
COUNTERS = ("applied", "derived", "batches", "duplicates")
_START_TIMEOUT = 120.0


@dataclass(frozen=True)
class Job:
    """What one projector needs: picklable, so a spawned child gets it as its argument."""

    database_url: str
    bootstrap: str
    kafka: KafkaSettings
    source_urn: str
    batch_size: int
    members: int


class Projectors(Protocol):
    """One or more projectors consuming the benchmark's topic."""

    async def start(self) -> None: ...
    def totals(self) -> dict[str, int]: ...
    def per_process(self) -> list[dict[str, int]]: ...
    def pids(self) -> list[int]: ...
    def dead(self) -> bool: ...
    async def stop(self) -> None: ...


def _projector(job: Job, engine: Any, dead_letters: KafkaEventLog) -> Projector:
    return Projector(
        lambda: KafkaLogConsumer(job.bootstrap, job.kafka),
        PostgresProjectionStore(engine),
        dead_letters,
        derive=DerivedEvents(job.source_urn, lambda: "http://127.0.0.1:8080"),
        batch_size=job.batch_size,
        members=job.members,
    )


class InProcess:
    """The projector in this process: what the benchmark measured before ``--processes``."""

    def __init__(self, job: Job) -> None:
        self._job = job
        self._engine = projection_engine(job.database_url, job.members)
        self._dead_letters = KafkaEventLog(job.bootstrap, job.kafka)
        self._projector = _projector(job, self._engine, self._dead_letters)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._dead_letters.start()
        self._task = asyncio.create_task(self._projector.run(self._stop))

    def totals(self) -> dict[str, int]:
        return {name: int(getattr(self._projector.stats, name)) for name in COUNTERS}

    def per_process(self) -> list[dict[str, int]]:
        return [self.totals()]

    def pids(self) -> list[int]:
        return [os.getpid()]

    def dead(self) -> bool:
        return self._task is not None and self._task.done()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        await self._dead_letters.stop()
        await self._engine.dispose()


def _child(job: Job, counters: SynchronizedArray[int], ready: Event, go: Event, stop: Event) -> None:
    """A child's whole life (module level: ``spawn`` imports it by name)."""
    configure_logging(Settings(log_level="warning", log_format="console"))
    asyncio.run(_child_loop(job, counters, ready, go, stop))


async def _child_loop(
    job: Job, counters: SynchronizedArray[int], ready: Event, go: Event, stop: Event
) -> None:
    projector = InProcess(job)
    ready.set()
    await asyncio.to_thread(go.wait)
    await projector.start()
    try:
        while not stop.is_set():
            counters[:] = list(projector.totals().values())
            await asyncio.sleep(0.01)
    finally:
        await projector.stop()
        counters[:] = list(projector.totals().values())


class Children:
    """``processes`` child processes, each a projector with ``job.members`` consumers."""

    def __init__(self, job: Job, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._go, self._stop = context.Event(), context.Event()
        self._ready = [context.Event() for _ in range(processes)]
        self._counters = [context.Array("q", len(COUNTERS)) for _ in range(processes)]
        self._processes = [
            context.Process(
                target=_child,
                args=(job, counters, ready, self._go, self._stop),
                name=f"projector-{n + 1}",
                daemon=True,  # gone with the benchmark, however it ends
            )
            for n, (counters, ready) in enumerate(zip(self._counters, self._ready, strict=True))
        ]

    async def start(self) -> None:
        """Start every child and let them consume once all are ready (RuntimeError when one dies
        or is not ready in time)."""
        for process in self._processes:
            process.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT
        while not all(ready.is_set() for ready in self._ready):
            if loop.time() > deadline or any(p.exitcode is not None for p in self._processes):
                await self.stop()
                raise RuntimeError("a projector process did not start; see its output above")
            await asyncio.sleep(0.02)
        self._go.set()

    def totals(self) -> dict[str, int]:
        return {name: sum(c[i] for c in self._counters) for i, name in enumerate(COUNTERS)}

    def per_process(self) -> list[dict[str, int]]:
        return [dict(zip(COUNTERS, c[:], strict=True)) for c in self._counters]

    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def dead(self) -> bool:
        """True when a child exited before it was asked to."""
        return not self._stop.is_set() and any(p.exitcode is not None for p in self._processes)

    async def stop(self) -> None:
        """Ask every child to stop and wait for it (its last counters are then final)."""
        self._go.set()  # a child still waiting to start stops at once
        self._stop.set()
        for process in self._processes:
            await asyncio.to_thread(process.join, 60)
            if process.exitcode is None:
                process.terminate()
                await asyncio.to_thread(process.join, 10)


def projectors(job: Job, processes: int) -> Projectors:
    """The projector in this process for 1, else ``processes`` children."""
    return InProcess(job) if processes == 1 else Children(job, processes)
