"""The whole hub in this test process: API, projector and dispatcher on the real broker and DB."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from hub.bootstrap import HubProcess
from hub.settings import Settings


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[HubProcess]:
    assert settings.kafka.bootstrap and settings.database_url
    process = HubProcess(settings, settings.kafka.bootstrap, settings.database_url)
    await process.start()
    await process.wait_started()
    yield process
    await process.shutdown(drain_timeout=15)


@pytest.fixture
async def client(hub: HubProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.api_port}", timeout=30) as http:
        yield http


@pytest.fixture
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client on a hub process that runs the API role only, on the real broker and database.

    For tests of what the real stores answer that never need an event delivered: without a
    projector there is no consumer group to join, so the process starts and stops in a
    fraction of a second."""
    assert settings.kafka.bootstrap and settings.database_url
    process = HubProcess(settings, settings.kafka.bootstrap, settings.database_url, roles=("api",))
    await process.start()
    try:
        await process.wait_started()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{process.api_port}", timeout=30) as http:
            yield http
    finally:
        await process.shutdown(drain_timeout=15)
