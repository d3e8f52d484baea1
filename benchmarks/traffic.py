"""Traffic for the benchmarks: events to publish, the publisher, subscriptions and tokens on a
running hub, and a local webhook sink that counts and times what it receives."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks.common import CpuMeter, free_port
from benchmarks.hubprocess import Hub

# --- publishing --------------------------------------------------------------------------------

EVENT_TYPE = "nl.signalen.melding.gewijzigd.v1"
EVENT_SOURCE = "urn:nld:oin:00000001234567890000:systeem:bench"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
_PADDING = "Gemeente gebruikt applicatie met koppelingen naar zaaksysteem en DMS. "


def make_event(event_id: str, i: int, data_bytes: int = 1024) -> dict[str, Any]:
    """An NL GOV CloudEvent about ``app-{i % 1000}`` whose ``data`` is about ``data_bytes`` of JSON
    (with room left for a ``sentns`` stamp)."""
    data: dict[str, Any] = {"applicatie": f"app-{i % 1000}", "gemeente": f"gm{i % 342:04d}", "n": i}
    room = data_bytes - len(json.dumps({**data, "omschrijving": "", "sentns": 1_700_000_000_000_000_000}))
    data["omschrijving"] = (_PADDING * (room // len(_PADDING) + 1))[: max(0, room)]
    return {
        "specversion": "1.0", "id": event_id, "source": EVENT_SOURCE, "type": EVENT_TYPE,
        "subject": f"app-{i % 1000}", "time": "2026-11-22T10:00:00Z", "datacontenttype": "application/json",
        "data": data,
    }  # fmt: skip


class Publisher:
    """aiohttp client for ``POST /api/v1/events`` over at most ``connections`` keep-alive
    connections; counts responses by status (0 = no answer) and stamps 202 times per id."""

    def __init__(self, hub: Hub, connections: int):
        self.url = f"{hub.base_url}/api/v1/events"
        self.auth = hub.auth
        self.statuses: Counter[int] = Counter()
        self.ack_ns: dict[str, int] = {}
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=300),
            timeout=aiohttp.ClientTimeout(total=60),
        )

    async def close(self) -> None:
        await self._http.close()

    async def post(self, body: bytes, content_type: str, ids: Sequence[str] = ()) -> int:
        headers = {**self.auth, "Content-Type": content_type}
        try:
            async with self._http.post(self.url, data=body, headers=headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        if status == 202:
            now = time.monotonic_ns()
            for event_id in ids:
                self.ack_ns[event_id] = now
        self.statuses[status] += 1
        return status

    async def post_all(self, bodies: Sequence[tuple[bytes, int]], content_type: str, workers: int) -> int:
        """Send (body, events in it) pairs with ``workers`` concurrent senders; returns events
        accepted (202)."""
        accepted = 0
        it = iter(bodies)

        async def worker() -> None:
            nonlocal accepted
            for body, events in it:
                if await self.post(body, content_type) == 202:
                    accepted += events

        await asyncio.gather(*(worker() for _ in range(workers)))
        return accepted


async def subscribe(hub: Hub, sink_url: str, **body: Any) -> dict[str, Any]:
    """Create a subscription (``POST /api/v1/subscriptions``); returns it, secret included."""
    url, payload = f"{hub.base_url}/api/v1/subscriptions", {"sink": sink_url, **body}
    async with aiohttp.ClientSession() as http, http.post(url, json=payload, headers=hub.auth) as r:
        created: dict[str, Any] = await r.json(content_type=None)
        if r.status != 201:
            raise RuntimeError(f"creating the subscription failed: {r.status} {created}")
        return created


async def systeem_token(hub: Hub) -> str:
    """A ``systeem`` API token for the benchmark's event source (``POST /api/v1/tokens``)."""
    url = f"{hub.base_url}/api/v1/tokens"
    body = {"name": "bench", "role": "systeem", "organisatie": "gm-bench", "sources": [EVENT_SOURCE]}
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=hub.auth) as r:
        created: dict[str, Any] = await r.json(content_type=None)
        if r.status != 201:
            raise RuntimeError(f"creating the token failed: {r.status} {created}")
        return str(created["token"])


# --- the webhook sink --------------------------------------------------------------------------


@dataclass
class Sink:
    """A keep-alive aiohttp server on loopback that answers 204 and records, per event id, the
    first arrival (``time.monotonic_ns``) and the ``data.sentns`` stamp the publisher put in."""

    arrivals: dict[str, int] = field(default_factory=dict)
    sent_ns: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    duplicates: int = 0
    url: str = ""
    _pending: set[str] = field(default_factory=set)
    _all_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    async def start(self) -> Sink:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=300)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port, backlog=1024).start()
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.monotonic_ns()
        self.requests += 1
        try:
            event = json.loads(body)
            event_id = str(event["id"])
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400)
        if event_id in self.arrivals:
            self.duplicates += 1
            return web.Response(status=204)
        self.arrivals[event_id] = now
        data = event.get("data")
        if isinstance(data, dict) and isinstance(data.get("sentns"), int):
            self.sent_ns[event_id] = data["sentns"]
        if event_id in self._pending:
            self._pending.discard(event_id)
            if not self._pending:
                self._all_arrived.set()
        return web.Response(status=204)

    def expect(self, ids: Iterable[str]) -> None:
        """Arm :meth:`wait_all` for these ids (those already arrived count)."""
        self._pending = {i for i in ids if i not in self.arrivals}
        self._all_arrived = asyncio.Event()
        if not self._pending:
            self._all_arrived.set()

    @property
    def missing(self) -> int:
        return len(self._pending)

    async def wait_all(self, within: float) -> bool:
        """True when every expected id arrived within ``within`` seconds."""
        try:
            await asyncio.wait_for(self._all_arrived.wait(), within)
        except TimeoutError:
            return False
        return True


async def wait_idle(
    meter: CpuMeter, *, groups: Sequence[str] = ("hub", "work", "postgres"), below: float = 0.05,
    window: float = 0.5, within: float = 20.0,
) -> float:  # fmt: skip
    """Wait until ``groups`` together use less than ``below`` cores over ``window``; returns seconds."""
    started = time.monotonic()
    before = meter.sample()
    while time.monotonic() - started < within:
        await asyncio.sleep(window)
        after = meter.sample()
        if sum(after.get(g, 0.0) - before.get(g, 0.0) for g in groups) / window < below:
            break
        before = after
    return time.monotonic() - started
