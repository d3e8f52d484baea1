"""SIGKILL the dispatcher after the sink got a delivery but before the outcome was recorded:
a new dispatcher sends it again (at least once, same webhook-id) and nothing is lost."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from hub.bootstrap import HubProcess
from hub.settings import Settings
from schemas import CloudEvent
from tests.e2e.test_crash_recovery import database, role, role_env, scalar
from tests.support.hub_api import TYPE, eventually, subscribe_in_store

pytestmark = pytest.mark.e2e


@asynccontextmanager
async def holding_sink(first_arrived: asyncio.Event, webhook_ids: list[str]) -> AsyncIterator[str]:
    """A sink that keeps the first request unanswered (its dispatcher dies meanwhile)."""

    async def handle(request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            return web.Response(status=405)
        await request.read()
        webhook_ids.append(request.headers["webhook-id"])
        if len(webhook_ids) == 1:
            first_arrived.set()
            await asyncio.sleep(30)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


async def test_a_dispatcher_killed_between_send_and_record_is_replaced_and_the_delivery_arrives(
    settings: Settings,
) -> None:
    assert settings.kafka.bootstrap and settings.database_url
    hub = HubProcess(settings, settings.kafka.bootstrap, settings.database_url, roles=("projector",))
    await hub.start()
    arrived, webhook_ids = asyncio.Event(), []
    try:
        async with holding_sink(arrived, webhook_ids) as url, database(settings) as engine:
            await subscribe_in_store(engine, url)
            assert hub.event_log is not None
            await hub.event_log.publish(
                [
                    CloudEvent(
                        specversion="1.0",
                        id="kill-1",
                        source="urn:nld:oin:00000001234567890000:systeem:crashtest",
                        type=TYPE,
                        subject="key-1",
                        data={"n": 1},
                    )
                ]
            )
            env = role_env(
                settings,
                KOPPELHUB_DELIVERY_LEASE_SECONDS="3",
                KOPPELHUB_DELIVERY_TIMEOUT_SECONDS="2",
            )
            with role("dispatcher", env) as first:
                await asyncio.wait_for(arrived.wait(), 60)
                first.send_signal(signal.SIGKILL)
                first.wait()
            # Sent, not recorded: no attempt logged, the delivery still open.
            assert await scalar(engine, "SELECT count(*) FROM delivery_attempts") == 0
            assert await scalar(engine, "SELECT count(*) FROM deliveries WHERE status = 'pending'") == 1
            with role("dispatcher", env):
                await eventually(
                    lambda: _delivered(engine),
                    timeout=60,
                    what="the delivery to be recorded by the second dispatcher",
                )
            assert len(webhook_ids) == 2 and len(set(webhook_ids)) == 1, webhook_ids
    finally:
        await hub.shutdown(drain_timeout=10)


async def _delivered(engine: object) -> bool:
    return await scalar(engine, "SELECT count(*) FROM deliveries WHERE status = 'delivered'") == 1
