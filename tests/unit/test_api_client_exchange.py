"""API connector requests on the egress's direct path (:meth:`AiohttpTransport.exchange`) keep
every promise of the httpx path: the connect-time SSRF guard, the same bytes on the wire, the
decoded answer, and error reports that name the method and URL.

A real HTTP server on loopback records what arrives; a scripted resolver plays DNS (see
tests/unit/test_connector_client.py for the rebinding set-up this mirrors).
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from connectors.base import ConnectorContext, SourceRefused
from connectors.http import ApiAuth, ApiClient, retry_after
from hub.adapters.egress import AiohttpTransport, egress
from subscriptions.ssrf import NetworkPolicy
from tests.unit.test_connector_client import INTERNAL, POLICY, PUBLIC, ScriptedResolver

ALLOW_ALL_LOOPBACK = NetworkPolicy.parse("127.0.0.0/8")


@dataclass
class Seen:
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Seen]]:
    seen = Seen()

    async def record(request: web.Request) -> web.Response:
        seen.requests.append(
            {
                "method": request.method,
                "path": request.raw_path,
                "headers": sorted((k.lower(), v) for k, v in request.headers.items() if k.lower() != "host"),
                "host": request.headers.get("Host"),
                "body": await request.read(),
            }
        )
        if request.path.endswith("/gzip"):
            return web.Response(body=gzip.compress(b'{"zipped":true}'), headers={"Content-Encoding": "gzip"})
        if request.path.endswith("/refused"):
            return web.json_response({"state": ["Invalid state transition"]}, status=400)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, PUBLIC, 0)
    await site.start()
    try:
        yield f"http://{PUBLIC}:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


class HttpxOnly(httpx.AsyncBaseTransport):
    """The same egress without ``exchange``: every request takes the httpx path."""

    def __init__(self, inner: AiohttpTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Counting(AiohttpTransport):
    exchanged = 0

    async def exchange(self, *args: Any, **kwargs: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        Counting.exchanged += 1
        return await super().exchange(*args, **kwargs)


def ctx(tmp_path: Path, transport: httpx.AsyncBaseTransport | None = None, **kw: Any) -> ConnectorContext:
    return ConnectorContext(
        organisatie="org-1", scope="s", work_dir=tmp_path, http_transport=transport,
        egress=egress(kw.get("policy", ALLOW_ALL_LOOPBACK), kw.get("resolver")),
    )  # fmt: skip


async def test_a_json_request_on_the_direct_path_sends_what_httpx_sends(
    server: tuple[str, Seen], tmp_path: Path
) -> None:
    url, seen = server
    body = {"status": {"state": "i", "text": "naar één", "send_email": False}}
    auth = ApiAuth(token="t0ken")
    direct = ApiClient(ctx(tmp_path), auth)
    via_httpx = ApiClient(ctx(tmp_path, HttpxOnly(AiohttpTransport(ALLOW_ALL_LOOPBACK))), auth)
    try:
        for client in (direct, via_httpx):
            assert (await client.request("PATCH", f"{url}/signals/1", json=body)).json() == {"ok": True}
            assert (await client.request("GET", f"{url}/signals/1?x=1")).status_code == 200
    finally:
        await direct.aclose()
        await via_httpx.aclose()
    assert seen.requests[0] == seen.requests[2] and seen.requests[1] == seen.requests[3]
    sent = '{"status":{"state":"i","text":"naar één","send_email":false}}'.encode()
    assert seen.requests[0]["body"] == sent


async def test_a_plain_request_skips_httpx_and_an_unusual_url_does_not(
    server: tuple[str, Seen], tmp_path: Path
) -> None:
    url, seen = server
    Counting.exchanged = 0
    client = ApiClient(ctx(tmp_path, Counting(ALLOW_ALL_LOOPBACK)), None)
    try:
        await client.request("GET", f"{url}/a")
        await client.request("GET", f"{url}/a b")  # httpx encodes the space: its path
        await client.request("GET", f"{url}/c", params={"q": "1"})
    finally:
        await client.aclose()
    assert Counting.exchanged == 1
    assert [r["path"] for r in seen.requests] == ["/a", "/a%20b", "/c?q=1"]


async def test_a_compressed_answer_is_decoded_and_a_refusal_names_method_and_url(
    server: tuple[str, Seen], tmp_path: Path
) -> None:
    url, _ = server
    client = ApiClient(ctx(tmp_path), None)
    try:
        assert (await client.request("GET", f"{url}/gzip")).json() == {"zipped": True}
        refused = await client.request("PATCH", f"{url}/refused", json={})
    finally:
        await client.aclose()
    error = client.failed(refused, "Signalen")
    assert isinstance(error, SourceRefused)
    assert str(error) == f"Signalen: PATCH {url}/refused answered 400"
    assert "Invalid state transition" in (client.last or {}).get("response", "")


async def test_the_direct_path_connects_to_the_checked_address_and_refuses_blocked_ones(
    server: tuple[str, Seen], tmp_path: Path
) -> None:
    url, seen = server
    port = url.rsplit(":", 1)[1]
    # DNS rebinding: the run's lookup answers the internal address; the guard refuses it.
    rebinding = ScriptedResolver([[INTERNAL]])
    client = ApiClient(ctx(tmp_path, policy=POLICY, resolver=rebinding), None)
    try:
        with pytest.raises(SourceRefused, match=r"127\.0\.0\.1 is loopback"):
            await client.request("GET", f"http://localhost:{port}/x")
        for literal in (INTERNAL, "2130706433", INTERNAL, "2130706433"):  # a kept verdict refuses too
            with pytest.raises(SourceRefused, match=r"loopback|canonical"):
                await client.request("GET", f"http://{literal}:{port}/x")
    finally:
        await client.aclose()
    assert seen.requests == [] and rebinding.calls == 1
    named = ApiClient(ctx(tmp_path, policy=POLICY, resolver=ScriptedResolver([[PUBLIC]])), None)
    try:
        await named.request("GET", f"http://localhost:{port}/y")
    finally:
        await named.aclose()
    assert seen.requests[0]["host"] == f"localhost:{port}"  # the name, not the address, as Host


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("120", 120.0), (" 7 ", 7.0), ("²", None), ("١٢", None), ("soon", None), (None, None)],
)
def test_a_retry_after_that_is_not_ascii_digits_or_a_date_is_not_trusted(
    value: str | None, seconds: float | None
) -> None:
    """``"²".isdigit()`` is true and ``int("²")`` a ValueError: the run failed as an internal
    error instead of waiting by its own schedule."""
    assert retry_after(value) == seconds
