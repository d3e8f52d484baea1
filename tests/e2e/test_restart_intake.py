"""The embedded broker started again under ``koppelhub run``: new connections are answered by
new API children while the old ones still answer what they had in flight.

``Children.restart`` starts every child anew at once and stops the old API children beside them
(they accept no more, and answer their requests in flight for up to
``INTAKE_RESTART_SECONDS``). Before, the new API children started only once the old ones had
answered, and a new connection waited for both (31 s on a slow machine, beyond a client's 30 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.test_outages import broker_pid
from tests.e2e.test_restarts import TOKEN, Hub, Publisher, projecting, ride_out
from tests.support.hub_api import eventually

pytestmark = pytest.mark.e2e


def api_children(hub: Hub) -> set[int]:
    """The pids of ``run``'s children that serve the API (``hub worker --roles api,...``)."""
    assert hub.proc is not None
    found = set()
    for child in psutil.Process(hub.proc.pid).children():
        with contextlib.suppress(psutil.Error):
            command = child.cmdline()
            if "worker" in command and "--roles" in command:
                if "api" in command[command.index("--roles") + 1].split(","):
                    found.add(child.pid)
    return found


async def _upload_held_open(port: int, release: asyncio.Event, cut: asyncio.Event) -> None:
    """A publish whose body arrives a byte every 0.25 s until ``release``: a request the old API
    child has in flight. ``cut`` is set if the hub ended the connection first."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.create_task(reader.read(1))  # done: the hub answered or closed it
    try:
        writer.write(
            b"POST /api/v1/events HTTP/1.1\r\nHost: hub\r\nContent-Type: application/cloudevents+json\r\n"
            + f"Authorization: Bearer {TOKEN}\r\nContent-Length: 100000\r\n\r\n{{".encode()
        )
        while not release.is_set():
            if answer.done():
                cut.set()
                return
            writer.write(b" ")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(release.wait(), 0.25)
    except OSError:
        cut.set()
    finally:
        answer.cancel()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _answered(hub: Hub) -> bool:
    """A new connection gets ``/readyz``'s 200."""
    async with httpx.AsyncClient(base_url=hub.url, timeout=60) as client:
        with contextlib.suppress(httpx.TransportError):
            return (await client.get("/readyz")).status_code == 200
    return False


async def test_a_new_connection_is_answered_while_the_old_api_still_answers(tmp_path: Path) -> None:
    async def outage(hub: Hub, publisher: Publisher) -> None:
        await eventually(lambda: projecting(hub), timeout=60, what="the projector committing")
        old_api = api_children(hub)
        assert old_api, "run has API children with KOPPELHUB_WORKERS=2"
        release, cut = asyncio.Event(), asyncio.Event()
        held = asyncio.create_task(_upload_held_open(hub.port, release, cut))
        try:
            await asyncio.sleep(0.5)  # the upload is in an old API child's hands
            os.kill(broker_pid(tmp_path), signal.SIGKILL)

            async def new_api_up() -> bool:
                return bool(api_children(hub) - old_api) and await _answered(hub)

            await eventually(new_api_up, timeout=60, what="a new API child answering")
            # The old child is still there, answering the upload it had (the marker): before,
            # a new API child started only after the old ones had ended.
            assert not cut.is_set(), "the old API child ended its request before a new one answered"
            assert api_children(hub) & old_api, "the old API child was gone before a new one answered"
        finally:
            release.set()
            await held

    await ride_out(tmp_path, outage, KOPPELHUB_WORKERS="2", KOPPELHUB_PROJECTOR_BATCH_SIZE="5")
