"""The write-ahead log's group commit: the rows of concurrent requests in one ``COPY`` and one
commit (see :mod:`hub.adapters.postgres.write_ahead`, its only user)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg
from psycopg.types.string import BytesBinaryDumper
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.errors import DataRejected, translate_db_errors
from schemas.bindings import KafkaRecord

#: Most rows one group commit takes; what is left waits for the next commit.
GROUP_ROWS = 5_000
#: How long opening the group commit's connection may take.
CONNECT_TIMEOUT_S = 10
#: The group commit connection's name in ``pg_stat_activity``.
APPLICATION_NAME = "koppelhub-write-ahead"
#: Binary COPY with the column types given once: no per-row type lookup, no hex escaping of
#: bytea (the text format's row writing was a third of a batch publish's CPU).
_COPY = (
    "COPY event_wal (source, event_id, key, value, header_names, header_values) FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES = [  # their oids, looked up once
    psycopg.adapters.types.get_oid(t) for t in ("text", "text", "bytea", "bytea", "text[]", "bytea[]")
]
WalRow = tuple[str, str, bytes | None, bytes | None, list[str], list[bytes]]


def wal_row(source: str, event_id: str, record: KafkaRecord) -> WalRow:
    names, values = [name for name, _ in record.headers], [value for _, value in record.headers]
    return (source, event_id, record.key, record.value, names, values)


class GroupCommit:
    """Write-ahead rows of concurrent requests in one ``COPY`` and one commit.

    One commit (and one fsync) per request was the write-ahead's whole cost under load. Here a
    request queues its rows and waits; one flusher at a time takes everything queued (up to
    :data:`GROUP_ROWS` rows), copies it into ``event_wal`` and commits, then answers every
    request in the group. Nothing waits for a timer: an idle hub commits a lone request at
    once, a busy one coalesces what arrived during the previous commit. A request is answered
    only after the commit that holds its rows, so the 202 still means "on disk". When a group
    fails on its data (:class:`DataRejected`), its requests are committed one by one, so one
    request's bad data never fails another's."""

    def __init__(self, engine: AsyncEngine):
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._queue: list[tuple[list[WalRow], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0  # how many commits it took (the tests see the coalescing)
        #: The last commit failed for a reason other than its data (the database away, its disk
        #: full): the write-ahead log then commits before it sends (see ``WriteAheadEventLog``).
        self.failing = False

    def submit(self, rows: list[WalRow]) -> asyncio.Future[None]:
        """Queue ``rows`` for the next commit; the future is done once they are committed, or
        holds what the commit raised. Not a coroutine: the caller goes on (to the broker's
        send) while the commit runs, without a task of its own. Cancelling the future does not
        take the rows back: they may still commit (the relay makes that at least once)."""
        done = asyncio.get_running_loop().create_future()
        self._queue.append((rows, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="write-ahead-group-commit")
        return done

    async def write(self, rows: list[WalRow]) -> None:
        """Return once ``rows`` are committed; raise what the commit raised."""
        await self.submit(rows)

    async def _flush(self) -> None:
        while self._queue:
            group: list[tuple[list[WalRow], asyncio.Future[None]]] = []
            size = 0
            while self._queue and (not group or size + len(self._queue[0][0]) <= GROUP_ROWS):
                group.append(self._queue.pop(0))
                size += len(group[-1][0])
            try:
                await self._commit([row for rows, _ in group for row in rows])
            except DataRejected as e:
                if len(group) == 1:
                    _answer(group, e)
                else:  # find the request whose data PostgreSQL refused; commit the others
                    for one in group:
                        try:
                            await self._commit(one[0])
                        except Exception as single:  # noqa: BLE001 - handed to its request
                            _answer([one], single)
                        else:
                            _answer([one], None)
            except Exception as e:  # noqa: BLE001 - every request in the group gets it (503)
                self.failing = True
                _answer(group, e)
            else:
                self.failing = False
                _answer(group, None)

    async def _commit(self, rows: list[WalRow]) -> None:
        """One ``COPY`` on the group's own connection in autocommit: the statement is its own
        transaction, so a group costs one round trip of statements (no pool checkout with its
        ping, no ``BEGIN``/``COMMIT``). After any failure the connection is closed; when a kept
        connection turns out dropped (a database restart, an idle-session timeout), the group is
        copied once more on a new one, as the pool's ping would have spared it. A row committed
        just before the drop is then written twice: harmless, the relay is at least once and
        the projector drops duplicates."""
        with translate_db_errors():
            while True:
                kept = self._conn is not None and not self._conn.closed
                try:
                    await self._copy(rows)
                    break
                except psycopg.OperationalError:
                    dropped = self._conn is not None and self._conn.broken
                    await self.close()
                    if not (kept and dropped):
                        raise
                except BaseException:
                    await self.close()
                    raise
        self.commits += 1

    async def _copy(self, rows: list[WalRow]) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                application_name=APPLICATION_NAME,
            )  # fmt: skip
            # COPY after set_types() dumps by type oid, and for bytea that finds the DB-API
            # ``Binary`` wrapper's dumper, a Python subclass called for every key, value and
            # header value (9 calls a row). psycopg's own (C) bytes dumper, registered for the
            # oid only (``cls=None``, documented for exactly this case): 6 % less write-ahead CPU.
            self._conn.adapters.register_dumper(None, BytesBinaryDumper)
        async with self._conn.cursor() as cursor, cursor.copy(_COPY) as copy:
            copy.set_types(_COPY_TYPES)
            for row in rows:
                await copy.write_row(row)

    async def close(self) -> None:
        """Close the group's connection (the next commit would open another)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


def _answer(group: list[tuple[list[WalRow], asyncio.Future[None]]], error: BaseException | None) -> None:
    for _, done in group:
        if done.done():  # its request was cancelled meanwhile
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
