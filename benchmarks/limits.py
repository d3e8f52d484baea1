"""The machine's own limits a benchmark is bounded by, measured in the same run (issue 17).

A figure alone says little on a machine whose speed and load vary; the same figure as a share
of what the machine does with no hub in between says how much the hub itself costs:

- :func:`post_rate`: raw aiohttp POSTs of a CloudEvent-sized body to the benchmark's own
  webhook sinks (:class:`benchmarks.traffic.Sink`), from a separate process as the hub's
  dispatcher is: the ceiling of deliveries (fan-out, end to end);
- :func:`produce_rate` / :func:`consume_rate`: raw aiokafka produce (acks=all, batched) and
  consume (``getmany``) of ~1 KB records on the same broker: the ceiling of publish and
  projection;
- :func:`insert_rate`: raw batched INSERTs (psycopg ``executemany``, one transaction per
  batch) of landscape-sized rows into the same PostgreSQL: the ceiling of projection and import.

Each returns a :class:`Limit` (items per second, and how it was measured).

    .venv/bin/python -m benchmarks.limits post URL [URL …] --requests 2000 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

BODY_BYTES = 1024


@dataclass(frozen=True)
class Limit:
    """One raw rate: ``name`` (e.g. ``post``), ``per_s`` items per second, ``items`` measured in
    ``seconds``, and ``how`` it was measured (for the report)."""

    name: str
    per_s: float
    items: int
    seconds: float
    how: str
    #: PostgreSQL's write-ahead log bytes per item (the insert limit only): what a row costs the
    #: database to write, indexes included, to weigh another workload's writes against.
    wal_per_item: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ratio(figure: float | None, limit: Limit | dict[str, Any] | None) -> float | None:
    """``figure`` as a share of the raw rate (None when either is missing or zero)."""
    per_s = limit.per_s if isinstance(limit, Limit) else (limit or {}).get("per_s")
    if not figure or not per_s:
        return None
    return round(figure / per_s, 4)


def _body(i: int) -> bytes:
    """A structured CloudEvent of about :data:`BODY_BYTES` as the dispatcher sends one."""
    event = {
        "specversion": "1.0",
        "id": f"limit-{uuid.uuid4().hex}-{i}",
        "type": "nl.koppelhub.limit.v1",
        "source": "urn:nld:oin:00000001234567890000:systeem:bench",
        "subject": f"app-{i % 1000}",
        "time": "2026-11-29T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {"n": i},
    }
    room = BODY_BYTES - len(json.dumps(event))
    event["data"] = {"n": i, "pad": "x" * max(0, room - 10)}
    return json.dumps(event).encode()


# --- raw POSTs to the sinks --------------------------------------------------------------------


async def _post_many(urls: Sequence[str], requests: int, concurrency: int) -> tuple[int, float]:
    """``requests`` POSTs spread over ``urls`` with ``concurrency`` in flight; (answered 2xx, s)."""
    bodies = [_body(i) for i in range(min(requests, 1000))]
    headers = {"Content-Type": "application/cloudevents+json"}
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=300)
    ok = 0
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(30)) as http:
        todo = iter(range(requests))

        async def worker() -> None:
            nonlocal ok
            for i in todo:
                async with http.post(urls[i % len(urls)], data=bodies[i % len(bodies)], headers=headers) as r:
                    await r.read()
                    ok += 200 <= r.status < 300

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok, time.perf_counter() - started


async def post_rate(urls: Sequence[str], *, requests: int = 5000, concurrency: int = 64) -> Limit:
    """Raw POSTs/s to ``urls`` from a child process (``python -m benchmarks.limits post``), so
    the client does not share this process's event loop with the sinks, as the hub does not."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.limits",
        "post",
        *urls,
        "--requests",
        str(requests),
        "--concurrency",
        str(concurrency),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the POST probe failed ({process.returncode}): {err.decode(errors='replace')}")
    return Limit(**json.loads(out))


# --- the broker --------------------------------------------------------------------------------


async def produce_rate(bootstrap: str, *, records: int = 20_000, topic: str | None = None) -> Limit:
    """Raw aiokafka produce of ``records`` ~1 KB records to a fresh topic (acks=all, batched
    sends awaited together per 1,000), as fast as the broker takes them."""
    from aiokafka import AIOKafkaProducer

    topic = topic or f"limit.{uuid.uuid4().hex[:8]}"
    bodies = [_body(i) for i in range(min(records, 1000))]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"warm-up")  # topic auto-created, metadata fetched
        started = time.perf_counter()
        for start in range(0, records, 1000):
            sent = [
                await producer.send(topic, bodies[i % len(bodies)], key=str(i % 1000).encode())
                for i in range(start, min(records, start + 1000))
            ]
            await asyncio.gather(*sent)
        seconds = time.perf_counter() - started
    finally:
        await producer.stop()
    return Limit(
        "produce",
        round(records / seconds, 1),
        records,
        round(seconds, 3),
        f"aiokafka produce, acks=all, {BODY_BYTES} B records, 1,000 per await, topic {topic}",
    )


async def consume_rate(bootstrap: str, topic: str, *, records: int) -> Limit:
    """Raw aiokafka consume (``getmany``, no group) of the first ``records`` of ``topic``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        got, started = 0, time.perf_counter()
        deadline = started + 120
        while got < records and time.perf_counter() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            got += sum(len(b) for b in batches.values())
        seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
    return Limit(
        "consume",
        round(got / seconds, 1),
        got,
        round(seconds, 3),
        f"aiokafka getmany, no group, from the beginning of {topic}",
    )


async def broker_rates(bootstrap: str, *, records: int = 20_000) -> tuple[Limit, Limit]:
    """Produce then consume the same fresh topic: (produce, consume)."""
    topic = f"limit.{uuid.uuid4().hex[:8]}"
    produced = await produce_rate(bootstrap, records=records, topic=topic)
    return produced, await consume_rate(bootstrap, topic, records=records + 1)


# --- PostgreSQL --------------------------------------------------------------------------------


def _libpq_url(database_url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as psycopg takes it."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


async def insert_rate(database_url: str, *, rows: int = 50_000, batch: int = 1000) -> Limit:
    """Raw batched INSERTs into a fresh table of the same PostgreSQL: ``rows`` landscape-sized
    rows (key, type, jsonb ~300 B, hash), ``executemany`` per ``batch`` in one transaction each,
    primary key index as the hub's tables have; the table is dropped afterwards."""
    import psycopg
    from psycopg.types.json import Jsonb

    table = f"limit_insert_{uuid.uuid4().hex[:8]}"
    sql = f"INSERT INTO {table} (id, objecttype, data, hash) VALUES (%s, %s, %s, %s)"
    data = {
        "naam": "Applicatie met een naam",
        "status": "In productie",
        "referentiecomponenten": ["rc-1"],
        "omschrijving": "x" * 200,
    }
    async with await psycopg.AsyncConnection.connect(_libpq_url(database_url), autocommit=False) as conn:
        await conn.execute(
            f"CREATE TABLE {table} (id text PRIMARY KEY, objecttype text NOT NULL, data jsonb NOT NULL, "
            "hash text)"
        )
        await conn.commit()
        try:
            wal_start = await wal_position(conn)
            started = time.perf_counter()
            for start in range(0, rows, batch):
                async with conn.cursor() as cur:
                    await cur.executemany(
                        sql,
                        [
                            (f"obj-{i:08d}", "applicatie", Jsonb(data), f"{i:032x}")
                            for i in range(start, min(rows, start + batch))
                        ],
                    )
                await conn.commit()
            seconds = time.perf_counter() - started
            wal = await wal_position(conn) - wal_start
        finally:
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
            await conn.commit()
    return Limit(
        "insert",
        round(rows / seconds, 1),
        rows,
        round(seconds, 3),
        f"psycopg executemany, {batch} rows per transaction, jsonb ~300 B, primary key, "
        f"{wal / rows:,.0f} B of WAL per row",
        wal_per_item=round(wal / rows, 1),
    )


#: The PostgreSQL cluster's current write-ahead log insert position in bytes (the insert
#: position: the hub commits with ``synchronous_commit=off``, so the write position can lag).
#: The difference of two is what the cluster wrote between them: every session's writes,
#: indexes and full pages included, autovacuum's too.
WAL_POSITION_SQL = "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"


async def wal_position(conn: Any) -> int:
    """:data:`WAL_POSITION_SQL` on a psycopg async connection."""
    cur = await conn.execute(WAL_POSITION_SQL)
    row = await cur.fetchone()
    await conn.commit()
    return int(row[0])


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.limits", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="probe", required=True)
    post = sub.add_parser("post", help="raw POSTs to the given URLs; prints a Limit as JSON")
    post.add_argument("urls", nargs="+")
    post.add_argument("--requests", type=int, default=5000)
    post.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    ok, seconds = asyncio.run(_post_many(args.urls, args.requests, args.concurrency))
    if ok != args.requests:
        print(f"{args.requests - ok} of {args.requests} POSTs were not answered 2xx", file=sys.stderr)
        return 1
    how = f"aiohttp POST {BODY_BYTES} B from a separate process, {args.concurrency} in flight"
    how += f", {len(args.urls)} sink(s)"
    print(json.dumps(Limit("post", round(ok / seconds, 1), ok, round(seconds, 3), how).as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
