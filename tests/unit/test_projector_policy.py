"""The projector's error policy, on the in-memory store: an error about one record parks that
record; an outage is retried, but not past a stop (the batch stays uncommitted)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from hub.adapters.memory import InMemoryProjectionStore, InMemoryProjectionUnitOfWork
from hub.adapters.postgres.errors import DatabaseUnavailable
from hub.ports import LoggedEvent
from hub.services.projector import Batch, Projector
from schemas import CloudEvent
from schemas.bindings import to_kafka_record

TP = TopicPartition("events", 0)


class FailingStore(InMemoryProjectionStore):
    """The in-memory store, failing every transaction that holds one of ``failures``' ids."""

    def __init__(self, failures: dict[str, BaseException]):
        super().__init__()
        self.failures = failures

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[InMemoryProjectionUnitOfWork]:
        async with super().transaction() as uow:
            record_new = uow.record_new

            async def failing(batch: Sequence[LoggedEvent]) -> Any:
                for item in batch:
                    if item.event.id in self.failures:
                        raise self.failures[item.event.id]
                return await record_new(batch)

            uow.record_new = failing  # type: ignore[method-assign]
            yield uow


class Recorder:
    """Dead letters and commits, as the projector hands them over."""

    def __init__(self) -> None:
        self.parked: list[tuple[bytes | None, str]] = []
        self.commits: list[dict[TopicPartition, int]] = []

    async def dead_letter(
        self, key: Any, value: Any, headers: Any, error: BaseException, origin: Any
    ) -> None:
        self.parked.append((dict(headers)["ce_id"], type(error).__name__))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)


def batch_of(*ids: str) -> Batch:
    records = []
    for offset, event_id in enumerate(ids):
        rec = to_kafka_record(
            CloudEvent(
                specversion="1.0", id=event_id, source="urn:nld:test", type="nl.test.event.v1", data={}
            )
        )
        records.append(
            ConsumerRecord(
                TP.topic,
                TP.partition,
                offset,
                0,
                0,
                rec.key,
                rec.value,
                None,
                0,
                len(rec.value or b""),
                rec.headers,
            )
        )
    return {TP: records}


def projector(store: InMemoryProjectionStore, recorder: Recorder) -> Projector:
    return Projector(lambda _: None, store, recorder, derive=None)  # type: ignore[arg-type,return-value]


async def test_an_unforeseen_error_about_one_record_parks_it_and_the_others_are_applied() -> None:
    store, recorder = FailingStore({"boom": RuntimeError("a bug that only this event triggers")}), Recorder()
    await projector(store, recorder)._handle_with_retry(recorder, batch_of("a", "boom", "b"), asyncio.Event())  # type: ignore[arg-type]
    assert recorder.parked == [(b"boom", "RuntimeError")]
    assert [a.event.id for a in store.archive] == ["a", "b"]
    assert recorder.commits == [{TP: 3}]


async def test_an_outage_is_retried_until_the_hub_stops_and_then_nothing_is_committed() -> None:
    store, recorder = FailingStore({"a": DatabaseUnavailable("connection refused")}), Recorder()
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.5, stop.set)
    async with asyncio.timeout(5):
        await projector(store, recorder)._handle_with_retry(recorder, batch_of("a", "b"), stop)  # type: ignore[arg-type]
    assert recorder.parked == [] and recorder.commits == [] and store.archive == []
