"""Sink authentication and egress against real local servers: OAuth2 client credentials
(fetched once, cached, refreshed, SSRF-guarded), an HTTP proxy, and client certificates."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from subscriptions.delivery import DeliveryClient, DeliveryTarget
from subscriptions.egress import OAuth2Tokens, client_ssl_context
from subscriptions.sender import WebhookSender
from subscriptions.ssrf import NetworkPolicy

LOOPBACK = NetworkPolicy.parse(["127.0.0.0/8"])
EVENT = {"specversion": "1.0", "id": "e-1", "source": "urn:x", "type": "t.v1", "data": {"n": 1}}


class Servers:
    def __init__(self) -> None:
        self.token_requests: list[dict[str, Any]] = []
        self.sink_auth: list[str | None] = []
        self.expires_in = 3600
        self.sink_status = 204
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_requests.append({"form": form, "authorization": request.headers.get("Authorization")})
        body = {"access_token": f"tok-{len(self.token_requests)}", "expires_in": self.expires_in}
        return web.json_response(body)

    async def sink(self, request: web.Request) -> web.Response:
        self.sink_auth.append(request.headers.get("Authorization"))
        return web.Response(status=self.sink_status)


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    s = Servers()
    app = web.Application()
    app.router.add_post("/token", s.token)
    app.router.add_post("/hook", s.sink)
    s.runner = web.AppRunner(app, access_log=None)
    await s.runner.setup()
    site = web.TCPSite(s.runner, "127.0.0.1", 0)
    await site.start()
    s.base = f"http://127.0.0.1:{s.runner.addresses[0][1]}"
    yield s
    await s.runner.cleanup()


def oauth2(base: str) -> dict[str, Any]:
    return {
        "token_url": f"{base}/token",
        "client_id": "hub client",
        "client_secret": "s3cret",
        "scope": "notify",
    }


async def test_an_oauth2_token_is_fetched_once_cached_and_sent_as_bearer(servers: Servers) -> None:
    async with WebhookSender(LOOPBACK) as sender:
        client = DeliveryClient(sender)
        target = DeliveryTarget(f"{servers.base}/hook", ["whsec_AAAA"], auth={"oauth2": oauth2(servers.base)})
        for _ in range(3):
            assert (await client.deliver(target, EVENT, "m-1")).delivered
    assert len(servers.token_requests) == 1
    [request] = servers.token_requests
    assert request["form"] == {"grant_type": "client_credentials", "scope": "notify"}
    assert request["authorization"] == "Basic aHViJTIwY2xpZW50OnMzY3JldA=="  # "hub%20client:s3cret"
    assert servers.sink_auth == ["Bearer tok-1"] * 3


async def test_an_expired_token_is_refreshed_and_a_401_drops_the_cached_one(servers: Servers) -> None:
    now = [0.0]
    async with WebhookSender(LOOPBACK) as sender:
        tokens = OAuth2Tokens(sender, margin_s=30, clock=lambda: now[0])
        config = oauth2(servers.base)
        servers.expires_in = 60
        assert await tokens.token(config) == "tok-1"
        now[0] = 29
        assert await tokens.token(config) == "tok-1"
        now[0] = 31  # within the margin before expiry: refresh
        assert await tokens.token(config) == "tok-2"

        client = DeliveryClient(sender)
        target = DeliveryTarget(f"{servers.base}/hook", ["whsec_AAAA"], auth={"oauth2": config})
        servers.sink_status = 401
        assert (await client.deliver(target, EVENT, "m-1")).status_code == 401
        servers.sink_status = 204
        assert (await client.deliver(target, EVENT, "m-1")).delivered
    assert servers.sink_auth[-1] == "Bearer tok-4"  # tok-3 was refused, tok-4 fetched after


async def test_concurrent_deliveries_share_one_token_fetch(servers: Servers) -> None:
    async with WebhookSender(LOOPBACK) as sender:
        client = DeliveryClient(sender)
        target = DeliveryTarget(f"{servers.base}/hook", ["whsec_AAAA"], auth={"oauth2": oauth2(servers.base)})
        outcomes = await asyncio.gather(*(client.deliver(target, EVENT, f"m-{i}") for i in range(10)))
    assert all(o.delivered for o in outcomes)
    assert len(servers.token_requests) == 1


async def test_a_token_url_on_a_blocked_network_is_refused_at_connect_time(servers: Servers) -> None:
    async with WebhookSender(NetworkPolicy.parse([])) as sender:
        client = DeliveryClient(sender)
        target = DeliveryTarget(
            "https://example.org/hook", ["whsec_AAAA"], auth={"oauth2": oauth2(servers.base)}
        )
        result = await client.deliver(target, EVENT, "m-1")
    assert not result.delivered and result.error == "oauth2_ssrf_refused"
    assert servers.token_requests == []


async def test_a_proxy_carries_the_delivery_and_its_address_passes_the_guard() -> None:
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with WebhookSender(LOOPBACK) as sender:
            client = DeliveryClient(sender, proxy=f"http://127.0.0.1:{port}")
            target = DeliveryTarget("http://sink.internal.example/hook", ["whsec_AAAA"])
            assert (await client.deliver(target, EVENT, "m-1")).delivered
        async with WebhookSender(NetworkPolicy.parse([])) as sender:
            blocked = DeliveryClient(sender, proxy=f"http://127.0.0.1:{port}")
            refused = await blocked.deliver(target, EVENT, "m-1")
            assert refused.error == "ssrf_refused"
    finally:
        server.close()
        await server.wait_closed()
    assert seen == [b"POST http://sink.internal.example/hook HTTP/1.1\r\n"]


def self_signed(folder: Path, name: str, *extra: str) -> tuple[str, str]:
    """A self-signed certificate and key (PEM) made with the openssl command."""
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-days", "1",
         "-keyout", str(key), "-out", str(cert), *extra],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert.read_text(), key.read_text()


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@needs_openssl
def test_a_client_certificate_loads_as_a_pair_and_garbage_is_refused(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "koppelhub")
    assert client_ssl_context(cert, key) is not None
    with pytest.raises(ValueError, match="PEM pair"):
        client_ssl_context(cert, cert)
    with pytest.raises(ValueError, match="CA certificate"):
        client_ssl_context(
            ca_certificate="-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----"
        )


@needs_openssl
async def test_mutual_tls_presents_the_client_certificate_to_a_sink_under_a_private_ca(
    tmp_path: Path,
) -> None:
    server_cert, _ = self_signed(tmp_path, "sink", "-addext", "subjectAltName=IP:127.0.0.1")
    client_cert, client_key = self_signed(tmp_path, "koppelhub-client")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(tmp_path / "sink.pem", tmp_path / "sink.key")
    server_tls.verify_mode = ssl.CERT_REQUIRED
    server_tls.load_verify_locations(cadata=client_cert)
    peers: list[Any] = []

    async def hook(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peercert") if request.transport else None)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    url = f"https://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        async with WebhookSender(LOOPBACK) as sender:
            client = DeliveryClient(sender)
            mtls = {
                "ca_certificate": server_cert,
                "client_certificate": {"certificate": client_cert, "private_key": client_key},
            }
            assert (
                await client.deliver(DeliveryTarget(url, ["whsec_AAAA"], auth=mtls), EVENT, "m-1")
            ).delivered
            anonymous = await client.deliver(
                DeliveryTarget(url, ["whsec_AAAA"], auth={"ca_certificate": server_cert}), EVENT, "m-2"
            )
            untrusted = await client.deliver(DeliveryTarget(url, ["whsec_AAAA"]), EVENT, "m-3")
    finally:
        await runner.cleanup()
    assert not anonymous.delivered and not untrusted.delivered
    assert untrusted.error == "tls_error"
    [peer] = peers
    assert ("commonName", "koppelhub-client") in [pair for rdn in peer["subject"] for pair in rdn]
