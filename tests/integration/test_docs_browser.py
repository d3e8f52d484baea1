"""``/docs`` renders in a real headless Chromium with no network but the hub's own (issue 11).

Debian's ``chromium`` driven by Playwright (``executable_path``: no browser download). Every
request to anything but the hub is aborted and recorded, and the browser's resolver answers
"not found" for every other host, so a page that needs a CDN stays blank and the test says
which URL it wanted. Skipped, with the reason, where Chromium is not installed; ``.ci/run``
installs it.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn

from tests.support.memory_app import ADMIN_TOKEN, memory_app, memory_settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        CHROMIUM is None, reason="needs Chromium (apt-get install chromium); .ci/run installs it"
    ),
]


@pytest.fixture
async def hub_url(tmp_path: Path) -> AsyncIterator[str]:
    """The API on in-memory stores behind a real HTTP server on loopback."""
    async with memory_app(memory_settings(tmp_path)) as memory:
        listener = socket.create_server(("127.0.0.1", 0))  # listening: early requests queue
        server = uvicorn.Server(uvicorn.Config(memory.app, log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve(sockets=[listener]))
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            server.should_exit = True
            await task
            listener.close()


async def test_docs_render_offline_and_authorize_makes_try_it_out_work(hub_url: str) -> None:
    from playwright.async_api import Route, async_playwright

    outside: list[str] = []

    async def only_the_hub(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort()

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"],
        )
        try:
            page = await browser.new_page()
            await page.route("**/*", only_the_hub)
            await page.goto(f"{hub_url}/docs")

            await page.wait_for_selector(".opblock", timeout=20_000)
            assert await page.locator(".opblock").count() >= 30
            assert await page.locator(".opblock-summary-path", has_text="/api/v1/events").count() == 1

            await page.click("button.authorize")
            await page.fill(".auth-container input", ADMIN_TOKEN)
            await page.click(".auth-btn-wrapper button.authorize")
            await page.click("button.btn-done")

            operation = page.locator("#operations-subscriptions-list_subscriptions_api_v1_subscriptions_get")
            await operation.locator(".opblock-summary").click()
            await operation.locator("button.try-out__btn").click()
            await operation.locator("button.execute").click()
            status = operation.locator(".live-responses-table .response .response-col_status").first
            await status.wait_for(timeout=10_000)
            assert (await status.inner_text()).strip() == "200"
        finally:
            await browser.close()

    assert outside == [], f"the docs page wanted resources from elsewhere: {outside}"
