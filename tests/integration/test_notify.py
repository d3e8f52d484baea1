"""LISTEN/NOTIFY between processes (hub/adapters/postgres/notify.py) on the real PostgreSQL.

The listener waits on its socket (not on psycopg's notifies(), which wakes every 100 ms), so
its own error path is what brings it back after a lost connection: tested by killing its
backend.
"""

from __future__ import annotations

import asyncio

import psycopg

from hub.adapters.postgres.engine import libpq_url
from hub.adapters.postgres.notify import LOG_CHANNEL, ChannelListener, LogAnnouncer


async def notify(database_url: str, channel: str) -> None:
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as conn:
        await conn.execute(f"NOTIFY {channel}")


async def test_a_listener_hears_a_notify_and_listens_again_after_its_connection_is_killed(
    database_url: str,
) -> None:
    heard = asyncio.Event()
    listener = ChannelListener(database_url, "koppelhub_test_channel", heard.set)
    await listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), 20)
        heard.clear()  # the call right after LISTEN (something may have been missed)
        await notify(database_url, "koppelhub_test_channel")
        await asyncio.wait_for(heard.wait(), 20)

        listener.listening.clear()
        async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as conn:
            killed = await (
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query = 'LISTEN koppelhub_test_channel'"
                )
            ).fetchall()
        assert killed == [(True,)]
        await asyncio.wait_for(listener.listening.wait(), 20)
        heard.clear()
        await notify(database_url, "koppelhub_test_channel")
        await asyncio.wait_for(heard.wait(), 20)
    finally:
        await listener.stop()


async def test_announcements_reach_a_listener_and_repeat_at_most_once_per_interval(database_url: str) -> None:
    heard = asyncio.Event()
    listener = ChannelListener(database_url, LOG_CHANNEL, heard.set)
    announcer = LogAnnouncer(database_url, every_s=3600)
    await listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), 20)
        heard.clear()
        announcer.announce()
        announcer.announce()  # within the interval: dropped
        await asyncio.wait_for(heard.wait(), 20)
        await announcer.stop()  # the listener can hear the NOTIFY before `sent` counts it
        assert announcer.sent == 1
    finally:
        await announcer.stop()
        await listener.stop()
