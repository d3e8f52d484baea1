"""publiccode.yml sources on loopback for the ``publiccode`` connector's tests.

A static file server (``files``: path → bytes, e.g. ``/raw/open-zaak.yml`` or a repository's
``/org/repo/-/raw/HEAD/publiccode.yml``) and an Open Catalog API ``GET /software`` answering
``{"data": [{"id", "url", "publiccodeYml", …}], "links": {"next": "?page[after]=…"}}`` pages of
``page_size`` items, the shape of the Developers Italia catalogue API (its ``links.next`` is a
relative query), and an organisation's repository list ``/orgs/leverancier/repos`` as GitHub
answers it (a JSON array, RFC 8288 ``Link`` paging). Every request path is recorded. Files carry
a strong ``ETag`` and answer ``304`` to a matching ``If-None-Match``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["FIXTURES", "PubliccodeFake", "with_url"]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "publiccode"


def with_url(name: str, url: str | None) -> str:
    """Fixture ``name``'s text, its ``url`` key replaced by ``url`` when given."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return text if url is None else re.sub(r"^url: .*$", f"url: {url}", text, count=1, flags=re.MULTILINE)


@dataclass
class PubliccodeFake:
    files: dict[str, bytes] = field(default_factory=dict)
    #: The catalogue's items, in order: ``{"id", "url", "publiccodeYml"}``.
    software: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 2
    #: Repository URLs the ``/orgs/leverancier/repos`` list names, ``page_size`` a page.
    repositories: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    #: Paths answered with this status instead (410: gone for good, 500: an outage).
    status: dict[str, int] = field(default_factory=dict)
    #: Files answered 304 Not Modified (their ``ETag`` sent back in ``If-None-Match``).
    not_modified: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    def fixture(self, name: str, path: str | None = None, *, url: str | None = None) -> str:
        """Serve ``tests/fixtures/publiccode/<name>`` at ``path`` (default ``/raw/<name>``), with
        its ``url`` key set to ``url`` when given (the repository it is served from); its URL."""
        where = path or f"/raw/{name}"
        self.files[where] = with_url(name, url).encode()
        return f"{self.url}{where}"

    def listed(self, name: str, url: str | None = None) -> None:
        """List fixture ``name`` (as it is) in the catalogue as the software at ``url`` (default:
        the file's own ``url``)."""
        text = with_url(name, None)
        own = re.search(r"^url: (.*)$", text, re.MULTILINE)
        assert own is not None
        entry = {"id": f"sw-{len(self.software) + 1}", "url": url or own.group(1), "publiccodeYml": text}
        self.software.append(entry)

    async def start(self) -> PubliccodeFake:
        app = web.Application()
        app.router.add_get("/software", self._software)
        app.router.add_get("/orgs/leverancier/repos", self._repos)
        app.router.add_get("/{path:.*}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _file(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        if request.path in self.status:
            return web.Response(status=self.status[request.path], text="Unavailable or gone")
        body = self.files.get(request.path)
        if body is None:
            return web.Response(status=404, text="Not Found")
        # As a forge's raw host answers: a strong ETag of the content, and 304 when it matches.
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
        if request.headers.get("If-None-Match") == etag:
            self.not_modified += 1
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, content_type="text/yaml", headers={"ETag": etag})

    async def _repos(self, request: web.Request) -> web.Response:
        """GitHub's shape: a JSON array, the next page in ``Link: <…>; rel="next"``."""
        self.requests.append(request.path_qs)
        page = int(request.query.get("page", "1"))
        start = (page - 1) * self.page_size
        items = [
            {"name": u.rsplit("/", 1)[-1], "html_url": u}
            for u in self.repositories[start : start + self.page_size]
        ]
        headers = {}
        if start + self.page_size < len(self.repositories):
            headers["Link"] = f'<{self.url}/orgs/leverancier/repos?page={page + 1}>; rel="next"'
        return web.json_response(items, headers=headers)

    async def _software(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        after = request.query.get("page[after]")
        start = next((i + 1 for i, s in enumerate(self.software) if s["id"] == after), 0)
        page = self.software[start : start + self.page_size]
        more = start + self.page_size < len(self.software)
        links = {"prev": None, "next": f"?page[after]={page[-1]['id']}" if more and page else None}
        return web.json_response({"data": page, "links": links})
