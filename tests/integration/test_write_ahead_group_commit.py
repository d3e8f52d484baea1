"""The write-ahead log's group commit on the real database: concurrent publishes share commits,
every accepted event's row is on disk before its publish returns, one request's bad data
fails only that request, and relay still replays every row in acceptance order."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Sequence

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import make_url, text

from hub.adapters.memory.log import InMemoryEventLog
from hub.adapters.postgres import write_ahead
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.errors import DatabaseUnavailable, DataRejected
from hub.adapters.postgres.write_ahead import WriteAheadEventLog
from hub.errors import BrokerUnavailable
from schemas import CloudEvent, parse_structured
from schemas.bindings import KafkaRecord
from tests.support.hub_api import event, eventually

pytestmark = pytest.mark.integration


def cloud_event(**changes: object) -> CloudEvent:

    return parse_structured(json.dumps(event(**changes)).encode(), max_bytes=1_000_000, max_extensions=20)


async def wal_ids(engine: object) -> list[str]:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        return [r[0] for r in await conn.execute(text("SELECT event_id FROM event_wal ORDER BY seq"))]


async def test_concurrent_publishes_share_commits_and_every_row_is_committed_before_its_answer(
    database_url: str,
) -> None:
    engine = create_engine(database_url, pool_size=4)
    inner = InMemoryEventLog()
    wal = WriteAheadEventLog(engine, inner)
    try:
        seen_on_disk: list[bool] = []

        async def publish(n: int) -> None:
            e = cloud_event(n=n)
            await wal.publish([e])
            seen_on_disk.append(e.id in await wal_ids(engine))

        await asyncio.gather(*(publish(n) for n in range(40)))
        assert seen_on_disk == [True] * 40
        assert len(await wal_ids(engine)) == 40
        assert wal.group.commits < 40  # coalesced: fewer commits than requests
    finally:
        await wal.close()
        await engine.dispose()


async def test_one_requests_bad_data_fails_only_that_request_in_a_shared_commit(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=4)
    wal = WriteAheadEventLog(engine, InMemoryEventLog())
    try:
        good = [cloud_event(n=n) for n in range(5)]
        # PostgreSQL text refuses U+0000 (SQLSTATE 22021): this request's data is the problem.
        bad = good[0].model_copy(update={"source": "urn:bad\x00source", "id": "bad"})
        results = await asyncio.gather(
            *(wal.publish([e]) for e in good[:2]),
            wal.publish([bad]),
            *(wal.publish([e]) for e in good[2:]),
            return_exceptions=True,
        )
        assert [type(r) for r in results] == [type(None)] * 2 + [DataRejected] + [type(None)] * 3
        assert sorted(await wal_ids(engine)) == sorted(e.id for e in good)
    finally:
        await wal.close()
        await engine.dispose()


async def test_the_idle_pruner_sends_nothing_until_rows_are_written(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=2)
    statements: list[str] = []
    sa_event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    wal = WriteAheadEventLog(engine, InMemoryEventLog())
    try:
        await wal._prune_if_written()  # the first round after a start looks once
        looked = len(statements)
        await wal._prune_if_written()  # idle: nothing written since
        await wal._prune_if_written()
        idle = len(statements) - looked
        await wal.publish([cloud_event()])
        written = len(statements)
        await wal._prune_if_written()  # not projected yet: the row stays, and is looked at again
        await wal._prune_if_written()

        assert looked > 0 and idle == 0
        assert len(statements) - written >= 4  # a prune and a look, twice
        assert len(await wal_ids(engine)) == 1
    finally:
        await wal.close()
        await engine.dispose()


async def test_a_pruner_that_left_the_table_empty_prunes_what_another_process_left_there_later(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``koppelhub import`` (or a process that stopped) may leave rows after this process saw
    the table empty: the pruner looks again every REVISIT_SECONDS, not only after its own writes."""
    monkeypatch.setattr(write_ahead, "PRUNE_SECONDS", 0.02)
    monkeypatch.setattr(write_ahead, "REVISIT_SECONDS", 0.2)
    engine = create_engine(database_url, pool_size=2)
    mine = WriteAheadEventLog(engine, InMemoryEventLog())
    other = WriteAheadEventLog(engine, InMemoryEventLog())  # another process's, whose pruner is not running
    left = cloud_event()

    async def pruned() -> bool:
        return left.id not in await wal_ids(engine)

    await mine._prune_if_written()  # the first round after a start looks once (and is over)
    assert not mine._unpruned  # so the table was seen empty: its own writes would not look again
    stop = asyncio.Event()
    pruner = asyncio.create_task(mine.run_pruner(stop))
    try:
        await other.publish([left])
        async with engine.begin() as conn:  # projected since
            await conn.execute(
                text("INSERT INTO processed_events (source, event_id, archive_seq) VALUES (:s, :i, 0)"),
                {"s": left.source, "i": left.id},
            )
        await eventually(pruned, timeout=10, what="the other process's projected row pruned")
    finally:
        stop.set()
        await pruner
        await mine.close()
        await other.close()
        await engine.dispose()


async def test_a_publish_after_the_database_dropped_the_group_connection_commits_at_once(
    database_url: str,
) -> None:
    engine = create_engine(database_url, pool_size=2)
    wal = WriteAheadEventLog(engine, InMemoryEventLog())
    try:
        first, second = cloud_event(n=1), cloud_event(n=2)
        await wal.publish([first])
        async with engine.connect() as conn:  # as a database restart or an idle-session timeout does
            dropped = await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'koppelhub-write-ahead'"
                )
            )
            assert [r[0] for r in dropped] == [True]
        await wal.publish([second])  # no 503: the group opens a new connection and commits
        assert sorted(await wal_ids(engine)) == sorted([first.id, second.id])
    finally:
        await wal.close()
        await engine.dispose()


async def test_the_rows_hold_every_record_byte_for_byte_as_it_was_sent(database_url: str) -> None:
    """Key, value and header values are bytea (with NUL bytes and empty values among them):
    what the relay would replay is what the broker was sent."""
    engine = create_engine(database_url, pool_size=2)
    inner = InMemoryEventLog()
    wal = WriteAheadEventLog(engine, inner)
    binary = parse_structured(
        json.dumps({**event(n=1), "datacontenttype": "application/octet-stream", "data": None,
                    "data_base64": "AAEC/wA=", "retries": 3, "urgent": True}).encode(),
        max_bytes=1_000_000, max_extensions=20,
    )  # fmt: skip
    try:
        await wal.publish([cloud_event(n=0), binary])
        sent = [record for partition in inner.partitions for record in partition]
        async with engine.connect() as conn:
            rows = list(
                await conn.execute(
                    text("SELECT key, value, header_names, header_values FROM event_wal ORDER BY seq")
                )
            )
        stored = [(r.key, r.value, list(zip(r.header_names, r.header_values, strict=True))) for r in rows]
        assert sorted(stored, key=repr) == sorted(((r.key, r.value, r.headers) for r in sent), key=repr)
        assert any(value == b"\x00\x01\x02\xff\x00" for _, value, _ in stored)
    finally:
        await wal.close()
        await engine.dispose()


class WatchedLog(InMemoryEventLog):
    """The in-memory broker, telling the test when a send reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.reached = asyncio.Event()

    async def publish_records(self, records: Sequence[KafkaRecord]) -> None:
        self.reached.set()
        await super().publish_records(records)


def sent_ids(log: InMemoryEventLog) -> list[str]:
    return [dict(r.headers)["ce_id"].decode() for partition in log.partitions for r in partition]


async def test_the_broker_send_starts_while_the_write_ahead_commit_still_waits_and_the_publish_waits_for_both(
    database_url: str,
) -> None:
    """The two waits overlap (the commit held back by a lock on ``event_wal``): the record
    reaches the broker before the commit, and the publish returns only once the row is on disk."""
    engine = create_engine(database_url, pool_size=2)
    inner = WatchedLog()
    wal = WriteAheadEventLog(engine, inner)
    e = cloud_event(n=1)
    try:
        async with engine.connect() as holder:
            await holder.execute(text("LOCK TABLE event_wal IN SHARE MODE"))  # COPY waits for it
            publishing = asyncio.create_task(wal.publish([e]))
            await asyncio.wait_for(inner.reached.wait(), timeout=10)
            assert sent_ids(inner) == [e.id]
            assert not publishing.done()  # the commit is still held back: no answer yet
            await holder.rollback()
        await asyncio.wait_for(publishing, timeout=10)
        assert await wal_ids(engine) == [e.id]
    finally:
        await wal.close()
        await engine.dispose()


async def test_a_refused_send_after_a_held_commit_keeps_the_rows_for_the_relay(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=2)
    inner = InMemoryEventLog()
    inner.unavailable = BrokerUnavailable("the broker refused")
    wal = WriteAheadEventLog(engine, inner)
    e = cloud_event(n=1)
    try:
        with pytest.raises(BrokerUnavailable):
            await wal.publish([e])
        assert await wal_ids(engine) == [e.id]
        assert wal._unsent is True  # the pruner relays it once the broker answers again
    finally:
        await wal.close()
        await engine.dispose()


async def test_while_the_write_ahead_commits_fail_a_publish_sends_nothing_to_the_broker(
    database_url: str,
) -> None:
    """Once a commit failed (the database away), publishes commit first again, so a refused
    request (503) does not leave its events in the broker's memory; the first request of an
    outage may still reach it, as any unanswered request may."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: a connection is refused at once
    nowhere = make_url(database_url).set(host="127.0.0.1", port=closed.getsockname()[1])
    engine = create_engine(nowhere.render_as_string(hide_password=False), pool_size=1)
    inner = WatchedLog()
    wal = WriteAheadEventLog(engine, inner)
    try:
        with pytest.raises(DatabaseUnavailable):
            await wal.publish([cloud_event(n=1)])  # the outage's first request
        assert wal.group.failing
        inner.reached.clear()
        marker = cloud_event(n=2)
        with pytest.raises(DatabaseUnavailable):
            await wal.publish([marker])
        assert not inner.reached.is_set()
        assert marker.id not in sent_ids(inner)
    finally:
        await wal.close()
        await engine.dispose()
        closed.close()
