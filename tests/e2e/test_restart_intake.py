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
import time
from pathlib import Path

import psutil
import pytest

from tests.e2e.test_outages import broker_pid
from tests.e2e.test_restarts import UPLOAD_HEAD, Hub, Publisher, projecting, ride_out
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


def holder(pids: set[int], hub_port: int, client_port: int) -> int | None:
    """Which of ``pids`` holds the hub's end of the client's connection from ``client_port``."""
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            for c in psutil.Process(pid).net_connections(kind="tcp"):
                if c.laddr and c.raddr and c.laddr.port == hub_port and c.raddr.port == client_port:
                    return pid
    return None


async def _upload_held_open(
    port: int, release: asyncio.Event, cut: asyncio.Event, opened: asyncio.Future[int]
) -> None:
    """A publish whose body arrives a byte every 0.25 s until ``release``: a request the old API
    child has in flight (``opened``: the client's port). ``cut``: the hub ended it first."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened.set_result(writer.get_extra_info("sockname")[1])
    answer = asyncio.create_task(reader.read(1))  # done: the hub answered or closed it
    try:
        writer.write(UPLOAD_HEAD)
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


async def _ready_answered_by(hub: Hub) -> int | None:
    """Ask ``/readyz`` on a new connection; the pid of the child that answered 200 (found while
    the connection is still open), else None."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    except OSError:
        return None
    try:
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: hub\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 60)
        if b" 200 " not in status:
            return None
        return holder(api_children(hub), hub.port, writer.get_extra_info("sockname")[1])
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_a_new_connection_is_answered_while_the_old_api_still_answers(tmp_path: Path) -> None:
    async def outage(hub: Hub, publisher: Publisher) -> None:
        await eventually(lambda: projecting(hub), timeout=60, what="the projector committing")
        old_api = api_children(hub)
        assert old_api, "run has API children with KOPPELHUB_WORKERS=2"
        release, cut = asyncio.Event(), asyncio.Event()
        opened: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        held = asyncio.create_task(_upload_held_open(hub.port, release, cut, opened))
        try:
            client_port = await opened

            async def in_old_hands() -> bool:
                return holder(old_api, hub.port, client_port) is not None

            await eventually(in_old_hands, timeout=30, what="an old API child holding the upload")
            killed_at = time.monotonic()
            os.kill(broker_pid(tmp_path), signal.SIGKILL)

            async def new_api_answers() -> bool:
                return (await _ready_answered_by(hub)) not in (None, *old_api)

            await eventually(new_api_answers, timeout=60, what="a new API child answering")
            waited = time.monotonic() - killed_at
            # The marker: the old child still answers the upload it had. Before, a new API child
            # started only after the old ones had ended (or been killed after 20 s).
            assert not cut.is_set(), f"the old API child ended its request first ({waited:.1f} s)"
            assert holder(old_api, hub.port, client_port), f"the old API child let go first ({waited:.1f} s)"
        finally:
            release.set()
            await held

    # The trickled body may take 120 s (not 30) before its 408: only the restart may end it here.
    await ride_out(
        tmp_path,
        outage,
        KOPPELHUB_WORKERS="2",
        KOPPELHUB_PROJECTOR_BATCH_SIZE="5",
        KOPPELHUB_HTTP_BODY_TIMEOUT_SECONDS="120",
    )
