"""The console's alerts, test event, "run now", import error report and audit log, clicked in a
real headless Chromium (Debian's ``chromium`` through Playwright), each checked against the
API it goes through. Skips, with the reason, where Chromium or Playwright is missing."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.bootstrap import HubProcess
from hub.settings import ConnectorSettings, Settings
from schemas.hub_events import DELIVERY_DEAD, SUBSCRIPTION_TEST
from tests.conftest import ADMIN_TOKEN
from tests.support.hub_api import TYPE, event, eventually, publish, run_import, subscribe
from tests.support.sink import Received, WebhookSink

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.async_api", reason="Playwright for Python is not installed")
if not shutil.which(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

ORG = "org-voorbeeldstad"


def gebruik_csv(n: int, bad: dict[int, str] | None = None) -> bytes:
    lines = ["id;afnemer;applicatie;status;versie\r\n"]
    lines += [f"g-{i};{ORG};app-{i};{(bad or {}).get(i, 'In productie')};1.{i}\r\n" for i in range(n)]
    return ("\ufeff" + "".join(lines)).encode()


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    files = tmp_path / "bronnen"
    files.mkdir()
    return settings.model_copy(
        update={"connectors": ConnectorSettings(poll_seconds=0.2, file_roots=[files], backoff_seconds=0.5)}
    )


@pytest.fixture
async def page(hub: HubProcess) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            tab = await browser.new_page(base_url=f"http://127.0.0.1:{hub.api_port}")
            await tab.goto("/console/login")
            await tab.fill("#token", ADMIN_TOKEN)
            await tab.click("button[type=submit]")
            yield tab
        finally:
            await browser.close()


def _test_events_ok(n: int, received: Received) -> int:
    """The sink takes only the hub's test event: every ordinary delivery fails (and goes dead)."""
    return 204 if json.loads(received.body).get("type") == SUBSCRIPTION_TEST else 500


async def test_the_overview_lists_a_dead_delivery_and_a_test_event_is_sent_by_clicking(
    hub: HubProcess, client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink, page: Any
) -> None:
    sink.responder = _test_events_ok
    subscription = await subscribe(client, auth, sink.url, types=[TYPE])
    doomed = event("console-alert", 1)
    assert (await publish(client, auth, doomed)).status_code == 202

    async def went_dead() -> bool:
        listed = await client.get(f"/api/v1/subscriptions/{subscription['id']}/deliveries", headers=auth)
        return [d["status"] for d in listed.json()["items"]] == ["dead"]

    await eventually(went_dead, what="the delivery to go dead (retry schedule 0.2, 0.4, 0.8 s)")
    await page.goto("/console")
    alerts = await page.inner_text("#alerts")
    assert DELIVERY_DEAD in alerts and doomed["id"] in alerts and subscription["id"] in alerts
    assert "1 subscription(s) failing or disabled" in alerts

    await page.goto(f"/console/subscriptions/{subscription['id']}")
    before = len(sink.delivered)
    await page.click("#send-test")
    assert (await page.inner_text("#done")).strip() == "test event delivered (HTTP 204)"
    [test] = sink.delivered[before:]
    assert test.json()["type"] == SUBSCRIPTION_TEST and test.json()["subject"] == subscription["id"]


async def test_run_now_an_import_error_report_and_the_audit_log_in_the_console(
    hub: HubProcess, client: httpx.AsyncClient, auth: dict[str, str], settings: Settings, page: Any
) -> None:
    source = settings.connectors.file_roots[0] / "gebruik.csv"
    source.write_bytes(gebruik_csv(3))
    body = {
        "kind": "csv",
        "organisatie": ORG,
        "scheduleSeconds": 3600,
        "config": {"location": str(source), "objecttype": "gebruik"},
    }
    created = await client.post("/api/v1/connectors", json=body, headers=auth)
    assert created.status_code == 201, created.text
    connector_id = created.json()["id"]

    async def published(n: int) -> bool:
        got = await client.get(f"/api/v1/connectors/{connector_id}", headers=auth)
        return bool(got.json()["status"]["eventsPublished"] == n)

    await eventually(lambda: published(3), what="the connector's first run")  # due at once
    source.write_bytes(gebruik_csv(5))  # two more rows; the next scheduled run is an hour away
    await page.goto("/console/connectors")
    await page.locator(f"#connector-{connector_id} button", has_text="Run now").click()
    assert (await page.inner_text("#done")).strip() == f"connector {connector_id} is due now"
    await eventually(lambda: published(5), what="the run the console asked for")

    done = await run_import(
        client, auth, gebruik_csv(6, bad={2: "kapot"}), "gebruik.csv", objecttype="gebruik", organisatie=ORG
    )
    assert done["status"] == "done" and done["counts"]["invalid"] == 1
    await page.goto("/console/connectors")
    await page.locator("#imports tr", has_text=done["id"]).locator("a", has_text="report").click()
    assert (await page.inner_text("#error-count")).strip() == "1"
    row = await page.inner_text("#row-errors")
    assert "4\tstatus" in row and "kapot" in row

    await page.click("text=Audit log")
    trail = await page.inner_text("#audit")
    assert "POST /api/v1/connectors" in trail and "POST /api/v1/imports" in trail
