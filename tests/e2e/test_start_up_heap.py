"""A started hub process has its start-up heap frozen and young collections made rarer
(hub.services.collector, called by HubProcess.start)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from hub.bootstrap import HubProcess
from hub.services import collector
from hub.settings import Settings

pytestmark = pytest.mark.e2e


@pytest.fixture
def fresh_collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As in a new process: nothing frozen by this module yet, CPython's thresholds."""
    saved = gc.get_threshold()
    monkeypatch.setattr(collector, "_frozen", False)
    gc.unfreeze()  # what an earlier test froze in this process: back in the oldest generation
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


async def test_a_started_hub_process_freezes_its_heap_and_collects_the_young_generation_rarely(
    settings: Settings, fresh_collector: None
) -> None:
    assert settings.kafka.bootstrap and settings.database_url
    assert gc.get_freeze_count() == 0
    process = HubProcess(settings, settings.kafka.bootstrap, settings.database_url, roles=("api",))
    await process.start()
    try:
        await process.wait_started()
        assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0
    finally:
        await process.shutdown(drain_timeout=15)
