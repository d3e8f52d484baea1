"""A sink slower than the per-attempt timeout: the attempt times out, is logged as such, and
the next try waits at least the slow-down floor."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from aiohttp import web

from hub.settings import Settings
from tests.e2e.test_delivery_outcomes import publish, wait_for_status
from tests.support.hub_api import event, subscribe

pytestmark = pytest.mark.e2e


@pytest.fixture
def settings(settings: Settings) -> Settings:
    delivery = settings.delivery.model_copy(update={"timeout_seconds": 0.5, "slow_down_seconds": 1.5})
    return settings.model_copy(update={"delivery": delivery})


async def test_a_slow_sink_times_out_and_is_retried_no_sooner_than_the_floor(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    arrivals: list[float] = []

    async def hook(request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            return web.Response(status=405)
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            await asyncio.sleep(2.0)  # longer than the 0.5 s attempt timeout
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hook)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        sub = await subscribe(client, auth, url, retrySchedule=[0.1, 0.1])
        await publish(client, auth, event())
        [done] = await wait_for_status(client, auth, sub["id"], "delivered")
        assert done["attempts"] == 2
        assert arrivals[1] - arrivals[0] >= 1.5 + 0.5 - 0.1, arrivals  # timeout, then the floor
        log = await client.get(
            f"/api/v1/subscriptions/{sub['id']}/deliveries/{done['id']}/attempts", headers=auth
        )
        attempts: list[dict[str, Any]] = log.json()["items"]
        assert [a["error"] for a in attempts] == ["timeout", None]
        assert attempts[0]["statusCode"] is None and attempts[0]["durationMs"] >= 450
    finally:
        await runner.cleanup()
