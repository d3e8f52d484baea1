"""The write-ahead log's kept dead letters, parked again by processes that relay together
(``run``'s children start at once after an embedded broker restart), on the real PostgreSQL
and the log's in-memory twin (the broker's side: tests/integration/test_write_ahead_lost_topics.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from hub.adapters.memory.log import InMemoryEventLog
from hub.adapters.postgres.engine import create_engine
from hub.adapters.postgres.write_ahead import WriteAheadEventLog
from schemas.bindings import to_kafka_record
from tests.integration.test_kafka_idling import event


async def test_processes_that_relay_together_park_each_kept_dead_letter_once(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=8)
    log = InMemoryEventLog()
    first = WriteAheadEventLog(engine, log)
    try:
        origin = SimpleNamespace(topic="t", partition=0, offset=7)
        for n in range(3):
            parked = to_kafka_record(event(n))
            await first.dead_letter(parked.key, parked.value, parked.headers, ValueError("bad"), origin)
        log.dead_letters.clear()  # the broker came back without them

        relays = [WriteAheadEventLog(engine, log) for _ in range(4)]
        await asyncio.gather(*(wal.relay() for wal in relays))

        assert sorted(dict(r.headers)["ce_id"] for r in log.dead_letters) == [b"e-0", b"e-1", b"e-2"]
    finally:
        await first.close()
        await engine.dispose()
