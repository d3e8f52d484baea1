"""Several projector members in one process: all events land, and the drain ends promptly
even when some members got no partition."""

from __future__ import annotations

import time

import httpx
import pytest

from hub.bootstrap import HubProcess
from hub.settings import Settings
from tests.support.hub_api import event, publish, subscribe_in_store
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e


async def test_members_beyond_the_partitions_neither_lose_events_nor_hold_up_the_drain(
    settings: Settings, sink: WebhookSink
) -> None:
    many = settings.model_copy(update={"projector_members": settings.kafka.partitions + 2})
    assert many.kafka.bootstrap and many.database_url
    hub = HubProcess(many, many.kafka.bootstrap, many.database_url)
    await hub.start()
    await hub.wait_started()
    try:
        assert hub.engine is not None
        await subscribe_in_store(hub.engine, sink.url)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.api_port}") as client:
            auth = {"Authorization": f"Bearer {many.admin_token}"}
            response = await publish(client, auth, *(event(f"key-{i}", i) for i in range(60)))
            assert response.status_code == 202
        await sink.wait_for(60)
    finally:
        started = time.monotonic()
        await hub.shutdown(drain_timeout=60)
        took = time.monotonic() - started
    assert took < 15, f"the drain took {took:.1f} s: a member without partitions waited for its timeout"
