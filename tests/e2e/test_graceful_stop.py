"""A request that reaches the hub on an idle keep-alive connection as the API stops is answered,
not cut off.

uvicorn closes every idle keep-alive connection the moment a graceful stop begins. A client that
sent its next request on one just then (it cannot know) found the connection closed with no
answer: ``httpx.ReadError`` in a test publishing through a restart of the API, where the client
cannot tell whether its events were accepted. The hub's protocol keeps such a connection open
for ``SHUTDOWN_GRACE_SECONDS`` and answers it with ``Connection: close``
(``hub/api/protocol.py``)."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub.api.protocol import SHUTDOWN_GRACE_SECONDS
from hub.bootstrap import HubProcess
from hub.settings import Settings

pytestmark = pytest.mark.e2e

REQUEST = b"GET /healthz HTTP/1.1\r\nhost: hub\r\n\r\n"


async def answer(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


async def test_a_request_on_an_idle_connection_as_the_api_stops_is_answered_not_cut_off(
    settings: Settings,
) -> None:
    assert settings.kafka.bootstrap and settings.database_url
    hub = HubProcess(settings, settings.kafka.bootstrap, settings.database_url, roles=("api",))
    await hub.start()
    await hub.wait_started()
    port = hub.api_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    stopping: asyncio.Task[None] | None = None
    try:
        writer.write(REQUEST)
        assert (await answer(reader)).startswith(b"HTTP/1.1 200")  # the connection is idle now
        stopping = asyncio.create_task(hub.shutdown(drain_timeout=15))
        # The server closes its listener and asks every connection to stop in one step: once a
        # new connection is refused, the idle one has been asked too.
        deadline = time.monotonic() + 10
        while not await refused(port):
            assert time.monotonic() < deadline, "the API did not begin to stop"
            await asyncio.sleep(0.01)
        asked = time.monotonic()
        writer.write(REQUEST)  # as a client that did not know yet
        second = await answer(reader)  # before: the connection was closed, nothing to read
        assert time.monotonic() - asked < SHUTDOWN_GRACE_SECONDS
        assert second.startswith(b"HTTP/1.1 200")
        assert b"connection: close" in second.lower()
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""  # then it is closed
    finally:
        writer.close()
        if stopping is not None:
            await stopping
        else:
            await hub.shutdown(drain_timeout=15)
