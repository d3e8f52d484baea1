"""A publish in one process wakes the idle projector of another (issue 17: idle CPU and latency).

``koppelhub run`` puts the API and the projector in different processes, and a paused projector
member learns of another process's write only from PostgreSQL (LISTEN/NOTIFY), else at its next
idle look. Here the two are two hub processes in this test process, each with its own broker
client and its own database connections (nothing in memory is shared), and the projector's
next look is ten minutes away: only the wake-up can explain a delivery within the test's
ordinary timeout.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from hub.bootstrap import HubProcess
from hub.settings import Settings
from tests.support.hub_api import event, publish, subscribe_in_store
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e

NEVER_MS = 600_000  # the idle look: far beyond any timeout of this test


async def until_idle(hub: HubProcess, *, within: float = 30.0) -> None:
    """Until every projector member owns its partitions and has stopped fetching."""
    deadline = time.monotonic() + within
    while not hub.log_consumers or any(c.fetching or not c.assigned for c in hub.log_consumers):
        assert time.monotonic() < deadline, "the projector never went idle"
        await asyncio.sleep(0.05)


async def test_a_publish_in_the_api_process_wakes_the_idle_projector_of_another_process(
    settings: Settings, sink: WebhookSink
) -> None:
    idle = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"idle_poll_ms": NEVER_MS})})
    assert idle.kafka.bootstrap and idle.database_url
    work = HubProcess(idle, idle.kafka.bootstrap, idle.database_url, roles=("projector", "dispatcher"))
    api = HubProcess(idle, idle.kafka.bootstrap, idle.database_url, roles=("api",))
    await work.start()
    try:
        await api.start()
        await api.wait_started()
        assert work.engine is not None
        await subscribe_in_store(work.engine, sink.url)
        await until_idle(work)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.api_port}") as client:
            auth = {"Authorization": f"Bearer {idle.admin_token}"}
            assert (await publish(client, auth, event("key-1", 1))).status_code == 202
        await sink.wait_for(1, timeout=30)  # the projector's own look comes after ten minutes
        await until_idle(work)  # and it idles again afterwards
    finally:
        await api.shutdown(drain_timeout=15)
        await work.shutdown(drain_timeout=15)
