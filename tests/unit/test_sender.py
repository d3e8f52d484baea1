"""The webhook sender against real local aiohttp servers."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web
from multidict import CIMultiDictProxy
from standardwebhooks.webhooks import Webhook

from subscriptions.sender import Disposition, WebhookSender, parse_retry_after
from subscriptions.signing import generate_secret, webhook_headers
from subscriptions.ssrf import NetworkPolicy

LOOPBACK_ALLOWED = NetworkPolicy.parse("127.0.0.0/8")
BODY = json.dumps({"specversion": "1.0", "id": "e1", "source": "urn:x", "type": "t"}).encode()


@dataclass
class Sink:
    """A local receiver that records what reached it."""

    base: str
    hits: dict[str, int] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)
    headers: list[CIMultiDictProxy[str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    state = Sink(base="")
    retry_date = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)

    def record(request: web.Request, body: bytes) -> None:
        state.hits[request.path] = state.hits.get(request.path, 0) + 1
        state.bodies.append(body)
        state.headers.append(request.headers)

    async def handle(request: web.Request) -> web.StreamResponse:
        record(request, await request.read())
        match request.path:
            case "/ok":
                return web.Response(status=204)
            case "/created":
                return web.json_response({"ok": True}, status=201)
            case "/gone":
                return web.Response(status=410, text="subscription removed")
            case "/fail":
                return web.Response(status=500, text="boom " * 300)
            case "/binary":
                return web.Response(status=502, body=b"\xff\xfe bad \xc3\x28 bytes")
            case "/huge":
                return web.Response(status=200, body=b"x" * 1_000_000)
            case "/redirect":
                raise web.HTTPFound("/ok")
            case "/busy":
                return web.Response(status=429, headers={"Retry-After": "120"})
            case "/unavailable":
                return web.Response(status=503, headers={"Retry-After": retry_date})
            case "/slow":
                # Held until the test ends so cleanup does not wait on a sleeping handler.
                await asyncio.wait_for(state.release.wait(), timeout=10)
                return web.Response(status=204)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    async with WebhookSender(LOOPBACK_ALLOWED, timeout_s=5.0, max_connections=10) as s:
        yield s


async def test_204_is_delivered_with_body_and_headers_intact(sink: Sink, sender: WebhookSender) -> None:
    secret = generate_secret()
    headers = {
        "Content-Type": "application/cloudevents+json",
        "Authorization": "Bearer abonnee-token",
        **webhook_headers(secret, "msg_1", int(time.time()), BODY),
    }
    outcome = await sender.post(sink.url("/ok"), BODY, headers)

    assert outcome.disposition is Disposition.DELIVERED
    assert outcome.delivered
    assert outcome.status_code == 204
    assert outcome.error is None
    assert outcome.duration_ms > 0
    assert sink.bodies == [BODY]
    received = sink.headers[0]
    assert received["Content-Type"] == "application/cloudevents+json"
    assert received["Authorization"] == "Bearer abonnee-token"
    assert "Koppelhub" in received["User-Agent"]
    assert "Cookie" not in received
    # What arrived still verifies with the reference Standard Webhooks verifier.
    Webhook(secret).verify(sink.bodies[0], dict(received))


async def test_any_2xx_is_delivered_and_the_body_excerpted(sink: Sink, sender: WebhookSender) -> None:
    outcome = await sender.post(sink.url("/created"), BODY, {})
    assert outcome.disposition is Disposition.DELIVERED
    assert outcome.status_code == 201
    assert outcome.response_excerpt == '{"ok": true}'


async def test_410_is_gone(sink: Sink, sender: WebhookSender) -> None:
    outcome = await sender.post(sink.url("/gone"), BODY, {})
    assert outcome.disposition is Disposition.GONE
    assert outcome.status_code == 410
    assert outcome.error == "http_410"
    assert outcome.response_excerpt == "subscription removed"


async def test_500_is_retried_with_a_512_character_excerpt(sink: Sink, sender: WebhookSender) -> None:
    outcome = await sender.post(sink.url("/fail"), BODY, {})
    assert outcome.disposition is Disposition.RETRY
    assert outcome.status_code == 500
    assert outcome.error == "http_500"
    assert outcome.response_excerpt == ("boom " * 300)[:512]
    assert outcome.retry_after_s is None


async def test_undecodable_body_is_excerpted_leniently(sink: Sink, sender: WebhookSender) -> None:
    outcome = await sender.post(sink.url("/binary"), BODY, {})
    assert outcome.error == "http_502"
    assert "bad" in outcome.response_excerpt
    assert "\ufffd" in outcome.response_excerpt


async def test_a_huge_answer_is_not_buffered(sink: Sink, sender: WebhookSender) -> None:
    outcome = await sender.post(sink.url("/huge"), BODY, {})
    assert outcome.disposition is Disposition.DELIVERED
    assert outcome.response_excerpt == "x" * 512


async def test_redirect_is_not_followed_and_is_a_failure(sink: Sink, sender: WebhookSender) -> None:
    outcome = await sender.post(sink.url("/redirect"), BODY, {})
    assert outcome.disposition is Disposition.RETRY
    assert outcome.status_code == 302
    assert outcome.error == "http_302"
    assert outcome.detail == "redirect to /ok not followed"
    assert sink.hits == {"/redirect": 1}


async def test_slow_sink_times_out(sink: Sink) -> None:
    async with WebhookSender(LOOPBACK_ALLOWED, timeout_s=0.3) as short:
        started = time.perf_counter()
        outcome = await short.post(sink.url("/slow"), BODY, {})
    assert outcome.disposition is Disposition.RETRY
    assert outcome.error == "timeout"
    assert outcome.status_code is None
    assert time.perf_counter() - started < 3
    assert 250 <= outcome.duration_ms < 3000


async def test_per_call_timeout_overrides_the_default(sink: Sink, sender: WebhookSender) -> None:
    outcome = await sender.post(sink.url("/slow"), BODY, {}, timeout_s=0.2)
    assert outcome.error == "timeout"


async def test_429_retry_after_seconds_is_parsed(sink: Sink, sender: WebhookSender) -> None:
    outcome = await sender.post(sink.url("/busy"), BODY, {})
    assert outcome.disposition is Disposition.RETRY
    assert outcome.status_code == 429
    assert outcome.error == "http_429"
    assert outcome.retry_after_s == 120.0


async def test_503_retry_after_http_date_is_parsed(sink: Sink, sender: WebhookSender) -> None:
    outcome = await sender.post(sink.url("/unavailable"), BODY, {})
    assert outcome.status_code == 503
    assert outcome.retry_after_s is not None
    assert 80 <= outcome.retry_after_s <= 91


async def test_connection_refused_is_a_connection_error(sender: WebhookSender) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more.
    outcome = await sender.post(f"http://127.0.0.1:{port}/hook", BODY, {})
    assert outcome.disposition is Disposition.RETRY
    assert outcome.error == "connection_error"
    assert outcome.status_code is None
    assert outcome.detail


async def test_default_policy_refuses_loopback_without_sending(sink: Sink) -> None:
    async with WebhookSender(NetworkPolicy(), timeout_s=5.0) as guarded:
        by_literal = await guarded.post(sink.url("/ok"), BODY, {})
        by_name = await guarded.post(sink.url("/ok").replace("127.0.0.1", "localhost"), BODY, {})
        legacy = await guarded.post(sink.url("/ok").replace("127.0.0.1", "2130706433"), BODY, {})
    for outcome in (by_literal, by_name, legacy):
        assert outcome.disposition is Disposition.REFUSED
        assert outcome.error == "ssrf_refused"
        assert outcome.status_code is None
    assert "loopback" in (by_literal.detail or "")
    assert "loopback" in (by_name.detail or "")
    assert "canonical" in (legacy.detail or "")
    assert sink.hits == {}


async def test_a_refused_sink_stays_refused_on_every_attempt(sink: Sink) -> None:
    # The guard's verdict is kept per sink URL (one parse and check per sink, not per attempt):
    # what it kept must be the refusal, for every later attempt too.
    async with WebhookSender(NetworkPolicy(), timeout_s=5.0) as guarded:
        outcomes = [await guarded.post(sink.url("/ok"), BODY, {}) for _ in range(3)]
    assert [o.error for o in outcomes] == ["ssrf_refused"] * 3
    assert all("loopback" in (o.detail or "") for o in outcomes)
    assert sink.hits == {}


async def test_unusable_urls_are_refused(sender: WebhookSender) -> None:
    for url in ("ftp://127.0.0.1/x", "/relative", "http://[::1/x"):
        outcome = await sender.post(url, BODY, {})
        assert outcome.disposition is Disposition.REFUSED
        assert outcome.error == "invalid_url", url


async def test_connections_are_reused(sink: Sink, sender: WebhookSender) -> None:
    outcomes = await asyncio.gather(*(sender.post(sink.url("/ok"), BODY, {}) for _ in range(50)))
    assert all(o.delivered for o in outcomes)
    assert sink.hits["/ok"] == 50


async def test_post_before_start_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        await WebhookSender(LOOPBACK_ALLOWED).post("http://127.0.0.1/", BODY, {})


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("30", now=now) == 30.0
    assert parse_retry_after(" 0 ", now=now) == 0.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:02:00 GMT", now=now) == 120.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    for bad in (None, "", "-5", "1.5", "soon", "Wed, 99 Foo 2025"):
        assert parse_retry_after(bad, now=now) is None
