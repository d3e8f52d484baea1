"""Wake-ups between processes through PostgreSQL: LISTEN/NOTIFY on a channel.

Every role shares PostgreSQL, in one ``run`` (its children) and when the roles run apart, so a
NOTIFY reaches every process that listens, wherever it runs, embedded database or not. A
notification is only ever a hint: whoever listens still has its own poll or look as the safety
net, so a lost connection or a dropped notification costs latency, never an event.

- :class:`ChannelListener` calls back on each notification on its channel (and once after each
  (re)connect: something may have been sent while nobody listened).
- :class:`LogAnnouncer` tells other processes' idle log consumers that this process wrote to
  the event log (channel :data:`LOG_CHANNEL`, see :mod:`hub.adapters.kafka_consumer`), at most
  once per ``every_s`` seconds: a woken member keeps fetching for a while (``_Idling``), so
  what is written in that while is fetched without another wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import psycopg
import structlog

from hub.adapters.postgres.engine import libpq_url

__all__ = ["LOG_CHANNEL", "ChannelListener", "LogAnnouncer"]

log = structlog.get_logger(__name__)

#: Channel of "a process wrote to the event log" (the projector's wake-up).
LOG_CHANNEL = "koppelhub_log_written"
#: Pause before a lost listening connection is opened again.
RECONNECT_SECONDS = 1.0
#: Longest an announcer's stop waits for a NOTIFY on its way.
STOP_SECONDS = 2.0


class ChannelListener:
    """Calls ``heard`` for every notification on ``channel``, from a connection of its own;
    with ``wanted``, only for those whose payload it accepts (one call per burst either way)."""

    def __init__(
        self,
        database_url: str,
        channel: str,
        heard: Callable[[], None],
        wanted: Callable[[str], bool] | None = None,
    ):
        self._url = libpq_url(database_url)
        self._channel, self._heard, self._wanted = channel, heard, wanted
        self._task: asyncio.Task[None] | None = None
        #: Set once the first LISTEN is in place (tests wait for it).
        self.listening = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name=f"listen-{self._channel}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {self._channel}")
                    self.listening.set()
                    self._heard()  # something may have been sent while we were not listening
                    await self._hear(conn.pgconn)
            except psycopg.Error as e:
                log.warning("listener_lost", channel=self._channel, error=str(e))
                await asyncio.sleep(RECONNECT_SECONDS)

    async def _hear(self, pgconn: psycopg.pq.abc.PGconn) -> None:
        """Call back on every notification until the connection fails (raised).

        Not ``AsyncConnection.notifies()``: it wakes every 100 ms to look for an interrupt
        (psycopg's wait interval), which was most of an idle process's wake-ups. Here the
        event loop watches the socket and nothing runs until the server sends something."""
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            try:
                pgconn.consume_input()
            except psycopg.Error as e:
                if not lost.done():
                    lost.set_exception(e)
                return
            heard, wanted = False, self._wanted
            while (notice := pgconn.notifies()) is not None:
                heard = heard or wanted is None or wanted(notice.extra.decode())
            if heard:
                self._heard()

        fd = pgconn.socket
        loop.add_reader(fd, readable)
        try:
            await lost
        finally:
            loop.remove_reader(fd)


class LogAnnouncer:
    """``NOTIFY`` :data:`LOG_CHANNEL` after this process wrote to the event log.

    :meth:`announce` returns at once (it is called where the write finished, the API's 202
    must not wait for it); the NOTIFY goes out from a task on a connection of its own, kept
    open. An announcement less than ``every_s`` after the last one that went out is dropped:
    a member woken by that one is still fetching (it keeps fetching for ``quiet_after``, more
    than ``every_s``), so under load this costs a few statements a second, not one per
    publish. One that fails is logged at debug and forgotten: the next write announces again.
    """

    def __init__(self, database_url: str, every_s: float):
        self._url = libpq_url(database_url)
        self._every = every_s
        self._last = -float("inf")
        self._conn: psycopg.AsyncConnection[object] | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent = 0  # how many went out (tests, and the idle benchmark's reader)

    def announce(self) -> None:
        now = time.monotonic()
        if now - self._last < self._every or (self._task is not None and not self._task.done()):
            return
        self._last = now
        self._task = asyncio.get_running_loop().create_task(self._send(), name="announce-log-written")

    async def _send(self) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
            await self._conn.execute(f"NOTIFY {LOG_CHANNEL}")
            self.sent += 1
        except psycopg.Error as e:
            log.debug("log_announce_failed", error=str(e))
            self._last = -float("inf")
            await self._close()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def stop(self) -> None:
        """Let a NOTIFY on its way go out (a one-off command stops right after its last write),
        for at most :data:`STOP_SECONDS`, then close the connection."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, STOP_SECONDS)
        await self._close()
