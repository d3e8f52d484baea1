"""A connector run on the real database and broker cannot read an internal page back through
its ``lastError`` (the API's ``lastError``), even where the page is reachable: the header error
names positions and the expected columns, never the header's text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from hub.settings import ConnectorSettings, Settings
from tests.support.connectors import ORG, harness

pytestmark = pytest.mark.integration

MARKER = "INTERNAL-SECRET-93c1f7"


@pytest.fixture
async def internal_page() -> AsyncIterator[str]:
    """An internal service's page whose first line holds the marker (read as a CSV header)."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=f"id,{MARKER},naam\n1,2,3\n", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/status", page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/status"
    finally:
        await runner.cleanup()


async def test_last_error_does_not_echo_the_first_line_of_a_downloaded_page(
    settings: Settings, tmp_path: Path, internal_page: str
) -> None:
    # Allow-listed, so the download really happens: the worst case for what comes back.
    settings = settings.model_copy(
        update={"connectors": ConnectorSettings(allow_networks=["127.0.0.0/8"], file_roots=[tmp_path])}
    )
    async with harness(settings) as h:
        record = await h.connectors.create(
            kind="csv",
            organisatie=ORG,
            schedule_seconds=3600,
            enabled=True,
            config={"location": internal_page, "objecttype": "applicatie"},
        )
        [claimed] = await h.connectors.claim_due(5)
        await h.runner.run_connector(claimed)
        after = await h.connectors.get(record.id)

    error = after.last_error or ""
    assert "1 unknown column(s), at position(s) 2, for applicatie" in error  # it was downloaded and read
    assert MARKER not in error
    assert after.events_published == 0
