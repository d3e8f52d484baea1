"""The console in a real headless Chromium (Debian's ``chromium``, driven by Playwright): each
page renders with live data, and an operator redrives a DLQ record and pauses a subscription
by clicking. Skips, with the reason, where Chromium or Playwright is missing."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from hub.bootstrap import HubProcess
from hub.settings import Settings
from schemas import validate_event
from schemas.bindings import to_kafka_record
from tests.conftest import ADMIN_TOKEN
from tests.support.hub_api import event, eventually, landscape_event, publish, subscribe
from tests.support.sink import WebhookSink

pytestmark = pytest.mark.e2e
#: Set to a directory to save a screenshot of each page there (the README's come from here).
SHOTS = os.environ.get("KOPPELHUB_TEST_SCREENSHOTS")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.async_api", reason="Playwright for Python is not installed")
if not shutil.which(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
async def page(hub: HubProcess) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            tab = await browser.new_page(base_url=f"http://127.0.0.1:{hub.api_port}")
            yield tab
        finally:
            await browser.close()


async def _park(settings: Settings) -> str:
    """A good event parked by mistake, as an outage might have parked it."""
    good = validate_event(event("console-key", 1))
    rec = to_kafka_record(good)
    parked = [*rec.headers, ("koppelhub_error", b"database away"), ("koppelhub_error_class", b"Outage")]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.kafka.dlq_topic, key=rec.key, value=rec.value, headers=parked)
    finally:
        await producer.stop()
    return good.id


async def _shot(page: Any, name: str) -> None:
    if SHOTS:
        await page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


async def test_an_operator_signs_in_sees_every_page_redrives_and_pauses(
    hub: HubProcess,
    settings: Settings,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    sink: WebhookSink,
    page: Any,
) -> None:
    subscription = await subscribe(client, auth, sink.url)
    parked_id = await _park(settings)

    await page.goto("/console")
    assert page.url.endswith("/console/login")
    await page.fill("#token", "wrong")
    await page.click("button[type=submit]")
    assert "not valid" in await page.inner_text("main")
    await page.fill("#token", ADMIN_TOKEN)
    await page.click("button[type=submit]")
    assert (await page.inner_text("#lag")).strip() == "0"
    assert (await page.inner_text("#dlq-records")).strip() == "1"
    await _shot(page, "overview")

    async def member_owns_all() -> bool:  # its record is written when the group assigns it
        members = (await client.get("/api/v1/status", headers=auth)).json()["log"]["members"]
        return [m["partitions"] for m in members] == [list(range(settings.kafka.partitions))]

    await eventually(member_owns_all, what="the projector member with its partitions")
    await page.click("text=Topics")
    rows = await page.locator("#partitions tr").count()
    assert rows == 1 + settings.kafka.partitions
    member = await page.locator("#members tr", has_text="koppelhub-projector-").inner_text()
    assert ", ".join(str(p) for p in range(settings.kafka.partitions)) in member
    await _shot(page, "topics")

    await page.click("text=DLQ")
    row = page.locator("#dead-letters tr", has_text="Outage")
    assert parked_id in await row.inner_text() and "database away" in await row.inner_text()
    await _shot(page, "dlq")
    await row.locator("button", has_text="Redrive").click()
    assert "Redriven: 1 records." in await page.inner_text("#redriven")
    [delivered] = await sink.wait_for(1)
    assert json.loads(delivered.body)["id"] == parked_id

    await page.click("text=Subscriptions")
    await page.click(f"text={subscription['id']}")
    delivery = page.locator("#deliveries tr", has_text=parked_id)
    assert (await delivery.locator(".status").inner_text()).strip() == "delivered"
    await delivery.locator("button", has_text="Retry").click()
    assert (await page.inner_text("#done")).strip() == "retry"
    again = await sink.wait_for(2)
    assert [json.loads(r.body)["id"] for r in again] == [parked_id, parked_id]

    await page.click("text=Subscriptions")
    sub_row = page.locator(f"#sub-{subscription['id']}")
    assert (await sub_row.locator(".status").inner_text()).strip() == "active"
    await sub_row.locator("button", has_text="Pause").click()
    assert (await page.locator(f"#sub-{subscription['id']} .status").inner_text()).strip() == "paused"
    got = await client.get(f"/api/v1/subscriptions/{subscription['id']}", headers=auth)
    assert got.json()["status"] == "paused"
    await _shot(page, "subscriptions")

    await page.click("text=Connectors and imports")
    assert await page.locator("#connectors").count() == 1

    org = landscape_event(
        "organisatie", "vastgelegd", {"id": "org-1", "naam": "Gemeente A", "type": "Gemeente"}
    )
    assert (await publish(client, auth, org)).status_code == 202

    async def projected() -> bool:
        return (await client.get("/api/v1/organisaties/org-1", headers=auth)).status_code == 200

    await eventually(projected, what="the organisatie projected")
    await page.click("text=Landscape")
    await page.fill("#organisatie", "org-1")
    await page.click("button[type=submit]")
    assert "Gemeente A" in await page.inner_text("#naam")
    await page.click("text=Sign out")
    await page.goto("/console/dlq")
    assert page.url.endswith("/console/login")
