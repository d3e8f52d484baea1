"""Connector HTTP requests connect only to the address the SSRF guard checked (DNS rebinding),
and download errors never quote what the server sent.

Real HTTP servers on loopback addresses stand in for a public host (127.0.0.2, allow-listed)
and an internal one (127.0.0.1, refused), both on the same port; a scripted resolver plays
the DNS server that answers differently from one query to the next. The host name is
``localhost``, so a client that resolved it by itself would reach the internal server.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from connectors.base import ConnectorContext, SourceRefused, SourceUnavailable
from connectors.sources import fetch_location
from hub.adapters.egress import egress
from subscriptions.ssrf import NetworkPolicy, check_sink

PUBLIC, INTERNAL = "127.0.0.2", "127.0.0.1"
#: The test's stand-in for "public": 127.0.0.2 allowed, the rest of loopback refused.
POLICY = NetworkPolicy.parse(f"{PUBLIC}/32")


@dataclass
class ScriptedResolver(AbstractResolver):
    """Answers from a script: one list of addresses per query, the last one repeating."""

    answers: list[list[str]]
    calls: int = 0
    hosts: list[str] = field(default_factory=list)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        self.hosts.append(host)
        return [
            ResolveResult(
                hostname=host, host=ip, port=port, family=socket.AF_INET, proto=0, flags=socket.AI_NUMERICHOST
            )
            for ip in answer
        ]

    async def close(self) -> None:
        pass


@dataclass
class Server:
    body: bytes
    hits: int = 0
    hosts: list[str] = field(default_factory=list)


@dataclass
class Hosts:
    port: int
    public: Server
    internal: Server


async def _serve(server: Server, address: str, port: int) -> web.AppRunner:
    async def page(request: web.Request) -> web.Response:
        server.hits += 1
        server.hosts.append(request.headers.get("Host", ""))
        return web.Response(body=server.body)

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner


@pytest.fixture
async def hosts() -> AsyncIterator[Hosts]:
    internal = Server(b"INTERNAL-ONLY\n")
    public = Server(b"id,naam\na,b\n")
    internal_runner = await _serve(internal, INTERNAL, 0)
    port = internal_runner.addresses[0][1]
    public_runner = await _serve(public, PUBLIC, port)
    try:
        yield Hosts(port, public, internal)
    finally:
        await public_runner.cleanup()
        await internal_runner.cleanup()


def context(
    tmp_path: Path, resolver: AbstractResolver | None, policy: NetworkPolicy = POLICY
) -> ConnectorContext:
    return ConnectorContext(
        organisatie="org-1", scope="s", work_dir=tmp_path / "work", egress=egress(policy, resolver)
    )


async def test_a_download_connects_to_the_address_it_checked_not_a_second_lookup(
    hosts: Hosts, tmp_path: Path
) -> None:
    # The first answer is the public host; any second lookup would answer the internal one.
    resolver = ScriptedResolver([[PUBLIC], [INTERNAL]])
    url = f"http://localhost:{hosts.port}/app.csv"

    local = await fetch_location(url, context(tmp_path, resolver), ())

    assert local.path.read_bytes() == b"id,naam\na,b\n"
    assert (hosts.public.hits, hosts.internal.hits) == (1, 0)
    assert resolver.calls == 1 and resolver.hosts == ["localhost"]
    assert hosts.public.hosts == [f"localhost:{hosts.port}"]  # the name, not the address, as Host
    local.discard()


async def test_dns_rebinding_after_the_config_check_is_refused_at_connect_time(
    hosts: Hosts, tmp_path: Path
) -> None:
    # Public when the API checked the connector's location, internal when the run connects.
    resolver = ScriptedResolver([[PUBLIC], [INTERNAL]])
    url = f"http://localhost:{hosts.port}/app.csv"
    await check_sink(url, POLICY, resolver)

    with pytest.raises(SourceRefused, match=r"127\.0\.0\.1 is loopback"):
        await fetch_location(url, context(tmp_path, resolver), ())

    assert (hosts.public.hits, hosts.internal.hits) == (0, 0)
    assert resolver.calls == 2
    assert list((tmp_path / "work").iterdir()) == []


async def test_a_blocked_ip_literal_is_never_connected_to(hosts: Hosts, tmp_path: Path) -> None:
    resolver = ScriptedResolver([[PUBLIC]])
    for url in (f"http://{INTERNAL}:{hosts.port}/x.csv", f"http://2130706433:{hosts.port}/x.csv"):
        with pytest.raises(SourceRefused, match=r"loopback|canonical"):
            await fetch_location(url, context(tmp_path, resolver, NetworkPolicy()), ())
    assert hosts.internal.hits == 0 and resolver.calls == 0


async def test_the_default_policy_refuses_loopback_names(hosts: Hosts, tmp_path: Path) -> None:
    # No allow-list and the system's own DNS: localhost is refused, not fetched.
    ctx = ConnectorContext(
        organisatie="org-1", scope="s", work_dir=tmp_path / "work", egress=egress(NetworkPolicy())
    )
    with pytest.raises(SourceRefused, match="loopback"):
        await fetch_location(f"http://localhost:{hosts.port}/x.csv", ctx, ())
    assert hosts.internal.hits == 0


async def test_a_non_http_answer_is_reported_without_quoting_it(tmp_path: Path) -> None:
    marker = b"SECRET-7d1e0b"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(marker + b" not http at all\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, INTERNAL, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        ctx = context(tmp_path, None, NetworkPolicy.parse("127.0.0.0/8"))
        with pytest.raises(SourceUnavailable) as failed:
            await fetch_location(f"http://{INTERNAL}:{port}/x.csv", ctx, ())
    finally:
        server.close()
        await server.wait_closed()
    assert "RemoteProtocolError" in str(failed.value)
    assert marker.decode() not in str(failed.value)


async def test_without_an_egress_a_download_is_refused_before_any_connection(
    hosts: Hosts, tmp_path: Path
) -> None:
    ctx = ConnectorContext(organisatie="org-1", scope="s", work_dir=tmp_path / "work")
    with pytest.raises(SourceRefused, match="no egress configured"):
        await fetch_location(f"http://{PUBLIC}:{hosts.port}/x.csv", ctx, ())
    assert (hosts.public.hits, hosts.internal.hits) == (0, 0)
