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
