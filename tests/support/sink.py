"""A real local webhook receiver for tests: records every request, answers as scripted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    method: str = "POST"
    #: The request's path and query, e.g. ``/hook`` or ``/api/zaken/z-1/status``.
    path: str = ""

    def json(self) -> Any:
        import json

        return json.loads(self.body)


#: A status, or a status with headers, or a status with headers and a body.
Answer = int | tuple[int, dict[str, str]] | tuple[int, dict[str, str], str]


def _parts(answer: Answer) -> tuple[int, dict[str, str], str | None]:
    if isinstance(answer, int):
        return answer, {}, None
    if len(answer) == 2:
        return answer[0], answer[1], None
    return answer[0], answer[1], answer[2]


@dataclass
class WebhookSink:
    """Answers ``responder(request_number, received)`` (default 204) and keeps what came in.

    OPTIONS is the CloudEvents webhook handshake: answered apart (``handshake_status``, default
    200 allowing the requesting origin, with ``allowed_rate`` per minute when set) and kept in
    ``handshakes``, not in ``received``.
    """

    responder: Callable[[int, Received], Answer] = lambda n, r: 204
    delay: float = 0.0  # seconds the sink takes before it answers
    handshake_status: int = 200
    allowed_rate: int | None = None
    handshakes: list[Received] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    delivered: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    url: str = ""

    async def start(self) -> WebhookSink:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await self._site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        got = Received(dict(request.headers), await request.read(), request.method, request.path_qs)
        if request.method == "OPTIONS":
            self.handshakes.append(got)
            headers = {}
            if self.handshake_status == 200:
                headers["WebHook-Allowed-Origin"] = request.headers.get("WebHook-Request-Origin", "*")
                if self.allowed_rate is not None:
                    headers["WebHook-Allowed-Rate"] = str(self.allowed_rate)
            return web.Response(status=self.handshake_status, headers=headers)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.received.append(got)
        answer = self.responder(len(self.received), got)
        status, headers, text = _parts(answer)
        if 200 <= status < 300:
            self.delivered.append(got)
        async with self._arrived:
            self._arrived.notify_all()
        return web.Response(status=status, headers=headers, text=text)

    async def wait_for(self, count: int, *, timeout: float = 30.0, delivered: bool = True) -> list[Received]:
        """Wait until ``count`` requests were accepted (2xx) or merely received."""
        pool = self.delivered if delivered else self.received

        async def enough() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(pool) >= count)

        await asyncio.wait_for(enough(), timeout)
        return list(pool)
