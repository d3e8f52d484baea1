"""The API on in-memory stores (tests/support/memory_app.py): one app per test, no infrastructure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.settings import Settings
from tests.support.memory_app import MemoryApp, memory_app, memory_settings


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The test settings, changed by ``indirect`` parametrization where a test needs it.

    ``request.param`` maps top-level setting names to values; ``delivery`` takes a dict of
    delivery settings to change."""
    base = memory_settings(tmp_path)
    changes: dict[str, Any] = dict(getattr(request, "param", {}))
    if "delivery" in changes:
        changes["delivery"] = base.delivery.model_copy(update=changes["delivery"])
    return base.model_copy(update=changes)


@pytest.fixture
async def memory(settings: Settings) -> AsyncIterator[MemoryApp]:
    async with memory_app(settings) as app:
        yield app


@pytest.fixture
def api_client(memory: MemoryApp) -> httpx.AsyncClient:
    return memory.client


@pytest.fixture
def client(memory: MemoryApp) -> httpx.AsyncClient:
    """The same client under the name the e2e tests use, so a moved test reads the same."""
    return memory.client
