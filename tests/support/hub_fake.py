"""A fake of another Koppelhub's pull API: a real HTTP server on loopback.

The shape is the hub's own (``hub/api/deliveries.py`` ``pull_events``): ``GET
/api/v1/subscriptions/{id}/events?after=&limit=`` (limit 1..1000) with a bearer token answers
``{"items": [...], "next": cursor, "more": bool, "hub": source URN}``; ``next`` is always given
(at the end it is where to poll from later); a wrong token is a 401, an unknown subscription a
404 (both problem+json). ``busy`` answers that many 429s with ``Retry-After: 0`` first.
Events are kept as pre-encoded JSON, so 100,000 of them cost nothing per page but a join.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web

from hub.paging import decode_cursor, encode_cursor

TOKEN = "khub_fake_token"


class HubFake:
    def __init__(self, hub: str, subscription: uuid.UUID | None = None, *, busy: int = 0) -> None:
        self.hub = hub
        self.subscription = subscription or uuid.uuid4()
        self.busy = busy
        self.events: list[bytes] = []
        self.requests: list[dict[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    def add(self, *events: dict[str, Any]) -> None:
        self.events += [orjson.dumps(e) for e in events]

    def add_encoded(self, events: list[bytes]) -> None:
        self.events += events

    async def start(self) -> HubFake:
        app = web.Application()
        app.router.add_get("/api/v1/subscriptions/{id}/events", self._pull)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _problem(status: int, title: str) -> web.Response:
        body = {"type": "about:blank", "title": title, "status": status}
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/problem+json")

    async def _pull(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.query))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._problem(401, "Unauthorized")
        if request.match_info["id"] != str(self.subscription):
            return self._problem(404, "Not found")
        if self.busy > 0:
            self.busy -= 1
            return web.Response(status=429, headers={"Retry-After": "0"})
        after = int(decode_cursor(request.query["after"])[1]) if request.query.get("after") else 0
        limit = int(request.query.get("limit", "100"))
        page = self.events[after : after + limit]
        last = after + len(page)
        head = b'{"items":[' + b",".join(page) + b"],"
        tail = {"next": encode_cursor("e", last), "more": last < len(self.events), "hub": self.hub}
        return web.Response(body=head + orjson.dumps(tail)[1:], content_type="application/json")
