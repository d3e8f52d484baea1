"""A supplier's JSON API on loopback for the ``rest`` connector's tests: items paged in each of
the styles the connector knows, ``updated_after`` filtering, an ETag on the first page (304 to
``If-None-Match``), a 429 with ``Retry-After`` on demand, and a page that fails (500) on demand.
Every request is recorded (path, query, headers, time)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["Request", "RestFake"]


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float


@dataclass
class RestFake:
    """``items``: ``{"id", "name", "updated_at"}`` dicts in ``updated_at`` order."""

    items: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 10
    #: Answer 429 with this Retry-After to the next this-many requests.
    busy: int = 0
    retry_after: str = "1"
    #: Answer 500 to pages of this number and later (1-based), while set.
    fail_from_page: int | None = None
    etag: str = '"v1"'
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    def add(self, n: int) -> None:
        start = len(self.items)
        for i in range(start + 1, start + n + 1):
            self.items.append(
                {"id": f"p-{i}", "name": f"Product {i}", "updated_at": f"2026-01-01T00:00:{i:02d}+00:00"}
            )

    async def start(self) -> RestFake:
        app = web.Application()
        app.router.add_get("/{style}", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def pages(self, style: str) -> list[Request]:
        return [r for r in self.requests if r.path == f"/{style}"]

    async def _page(self, request: web.Request) -> web.Response:
        q = request.rel_url.query
        self.requests.append(Request(request.path, dict(q), dict(request.headers), time.monotonic()))
        if self.busy:
            self.busy -= 1
            return web.json_response(
                {"detail": "slow down"}, status=429, headers={"Retry-After": self.retry_after}
            )
        chosen = [i for i in self.items if "updated_after" not in q or i["updated_at"] >= q["updated_after"]]
        style = request.match_info["style"]
        number, start = self._position(style, q)
        if self.fail_from_page is not None and number >= self.fail_from_page:
            return web.json_response({"detail": "internal error"}, status=500)
        first = number == 1
        if first and request.headers.get("If-None-Match") == self.etag:
            return web.Response(status=304)
        page = chosen[start : start + self.page_size]
        headers = {"ETag": self.etag} if first else {}
        base = request.url.with_query({k: v for k, v in q.items() if k not in ("page", "cursor")})
        more = start + self.page_size < len(chosen)
        if style == "link-header" and more:
            headers["Link"] = f'<{base.update_query(page=number + 1)}>; rel="next"'
        body: dict[str, Any]
        if style == "cursor":
            body = {
                "data": {"items": page},
                "meta": {"next_cursor": f"c{start + self.page_size}" if more else None},
            }
        else:
            body = {"results": page}
            if style == "next-link":
                body["links"] = {"next": str(base.update_query(page=number + 1)) if more else None}
        return web.json_response(body, headers=headers)

    def _position(self, style: str, q: Any) -> tuple[int, int]:
        """(page number, index of its first item)"""
        if style == "cursor":
            start = int(q.get("cursor", "c0")[1:])
        else:
            start = (int(q.get("page", "1")) - 1) * self.page_size
        return start // self.page_size + 1, start
