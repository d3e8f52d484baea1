"""SSRF guard: the address policy, the sink check and the connect-time resolver."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from subscriptions.sender import BlockedAddressError, Disposition, GuardedResolver, WebhookSender
from subscriptions.ssrf import (
    NetworkPolicy,
    SinkRefused,
    SinkUnresolvable,
    check_sink,
    ip_literal,
)

DEFAULT = NetworkPolicy()
LOOPBACK_ALLOWED = NetworkPolicy.parse("127.0.0.0/8, ::1/128")


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "172.16.5.4",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # CGNAT
        "100.127.255.254",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.10",
        "198.18.0.1",
        "::",
        "::1",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fd12:3456:789a::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "2001:db8::1",
        "fec0::1",  # deprecated site-local, outside global unicast
    ],
)
def test_non_public_addresses_are_refused(ip: str) -> None:
    assert not DEFAULT.is_allowed(ip)
    assert DEFAULT.refusal_reason(ip)


@pytest.mark.parametrize(
    "ip",
    [
        "93.184.215.14",
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",  # just below CGNAT
        "100.128.0.1",  # just above CGNAT
        "172.32.0.1",  # just above 172.16/12
        "2606:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:93.184.215.14",  # mapped public IPv4 is judged by the IPv4
        "64:ff9b::5db8:d70e",  # NAT64 of 93.184.215.14
        "2002:5db8:d70e::1",  # 6to4 of a public IPv4
    ],
)
def test_public_addresses_are_allowed(ip: str) -> None:
    assert DEFAULT.is_allowed(ip)
    assert DEFAULT.is_allowed(ip_address(ip))


def test_reasons_name_the_category() -> None:
    assert DEFAULT.refusal_reason("127.0.0.1") == "127.0.0.1 is loopback"
    assert "carrier-grade NAT" in (DEFAULT.refusal_reason("100.64.0.1") or "")
    assert "link-local" in (DEFAULT.refusal_reason("169.254.169.254") or "")
    assert "unique local" in (DEFAULT.refusal_reason("fd00::1") or "")
    assert "embeds 10.0.0.1 is private" in (DEFAULT.refusal_reason("::ffff:10.0.0.1") or "")


def test_allow_list_makes_exceptions() -> None:
    policy = NetworkPolicy.parse("127.0.0.0/8, ::1/128, 10.1.0.0/16")
    assert policy.allow == (
        ip_network("127.0.0.0/8"),
        ip_network("::1/128"),
        ip_network("10.1.0.0/16"),
    )
    for ip in ("127.0.0.1", "::1", "10.1.2.3", "::ffff:127.0.0.1", "::ffff:10.1.0.9"):
        assert policy.is_allowed(ip), ip
    for ip in ("10.2.0.1", "192.168.0.1", "169.254.169.254", "::ffff:10.2.0.1", "fe80::1"):
        assert not policy.is_allowed(ip), ip


def test_policy_parse_accepts_lists_and_rejects_bad_cidrs() -> None:
    assert NetworkPolicy.parse(["10.0.0.0/8", " 192.168.0.1 "]).allow == (
        ip_network("10.0.0.0/8"),
        ip_network("192.168.0.1/32"),
    )
    assert NetworkPolicy.parse("").allow == ()
    with pytest.raises(ValueError, match=re.escape("'10.0.0.0/33'")):
        NetworkPolicy.parse("127.0.0.0/8,10.0.0.0/33")
    with pytest.raises(ValueError, match="'intranet'"):
        NetworkPolicy.parse("intranet")
    with pytest.raises(ValueError, match=re.escape("'10.0.0.5/8'")):
        NetworkPolicy.parse("10.0.0.5/8")  # host bits: a typo, not silently widened


def test_ip_literal_recognises_literals_and_refuses_legacy_numeric_forms() -> None:
    assert ip_literal("127.0.0.1") == ip_address("127.0.0.1")
    assert ip_literal("[::1]") == ip_address("::1")
    assert ip_literal("example.nl") is None
    for host in ("2130706433", "0177.0.0.1", "127.1", "1.2.3.4.5", "[::1"):
        with pytest.raises(SinkRefused, match="canonical"):
            ip_literal(host)
    # Not numeric-looking, so it is a "name": the resolver sees it and maps it to loopback.
    assert ip_literal("0x7f.0.0.1") is None


@dataclass
class FakeResolver(AbstractResolver):
    """Answers from a script: one list of addresses per call, the last one repeating."""

    answers: list[list[str]]
    calls: int = 0
    hosts: list[str] = field(default_factory=list)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        self.hosts.append(host)
        if not answer:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            ResolveResult(
                hostname=host,
                host=ip,
                port=port,
                family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for ip in answer
        ]

    async def close(self) -> None:
        pass


async def test_check_sink_refuses_blocked_literals() -> None:
    with pytest.raises(SinkRefused, match="loopback"):
        await check_sink("http://127.0.0.1:8080/hook", DEFAULT)
    with pytest.raises(SinkRefused, match="link-local"):
        await check_sink("http://169.254.169.254/latest/meta-data", DEFAULT)
    with pytest.raises(SinkRefused, match="embeds"):
        await check_sink("http://[::ffff:10.0.0.1]/hook", DEFAULT)
    with pytest.raises(SinkRefused, match="canonical"):
        await check_sink("http://2130706433/hook", DEFAULT)
    await check_sink("http://127.0.0.1:8080/hook", LOOPBACK_ALLOWED)
    await check_sink("https://93.184.215.14/hook", DEFAULT)


async def test_check_sink_refuses_when_any_resolved_address_is_blocked() -> None:
    resolver = FakeResolver([["93.184.215.14", "10.0.0.7"]])
    with pytest.raises(SinkRefused, match=r"'sink.example' resolves to 10\.0\.0\.7 is private"):
        await check_sink("https://sink.example/hook", DEFAULT, resolver)
    assert resolver.hosts == ["sink.example"]
    await check_sink("https://sink.example/hook", DEFAULT, FakeResolver([["93.184.215.14"]]))


async def test_check_sink_reports_unresolvable_hosts_and_bad_urls() -> None:
    with pytest.raises(SinkUnresolvable, match="does not resolve"):
        await check_sink("https://nowhere.example/", DEFAULT, FakeResolver([[]]))
    with pytest.raises(SinkRefused, match="http"):
        await check_sink("file:///etc/passwd", DEFAULT)
    with pytest.raises(SinkRefused, match="host"):
        await check_sink("http:///path-only", DEFAULT)


async def test_check_sink_resolves_with_the_system_resolver_by_default() -> None:
    with pytest.raises(SinkRefused, match="loopback"):
        await check_sink("http://localhost:8080/hook", DEFAULT)
    with pytest.raises(SinkRefused, match="loopback"):
        await check_sink("http://0x7f.0.0.1/hook", DEFAULT)


async def test_guarded_resolver_keeps_allowed_addresses_and_refuses_when_none_remain() -> None:
    mixed = GuardedResolver(DEFAULT, FakeResolver([["10.0.0.1", "93.184.215.14", "::1"]]))
    assert [r["host"] for r in await mixed.resolve("sink.example", 443)] == ["93.184.215.14"]
    blocked = GuardedResolver(DEFAULT, FakeResolver([["10.0.0.1", "fd00::1"]]))
    with pytest.raises(BlockedAddressError, match=re.escape("10.0.0.1 is private")):
        await blocked.resolve("sink.example", 443)


@dataclass
class CountingServer:
    port: int
    hits: int = 0


@pytest.fixture
async def server() -> AsyncIterator[CountingServer]:
    state = CountingServer(port=0)

    async def hook(request: web.Request) -> web.Response:
        state.hits += 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_dns_rebinding_is_refused_at_connect_time(server: CountingServer) -> None:
    # Public when the subscription is checked, loopback when the delivery connects.
    resolver = FakeResolver([["93.184.215.14"], ["127.0.0.1"]])
    url = f"http://rebind.example:{server.port}/hook"
    await check_sink(url, DEFAULT, resolver)

    async with WebhookSender(DEFAULT, resolver=resolver, timeout_s=5.0) as sender:
        outcome = await sender.post(url, b"{}", {"Content-Type": "application/json"})

    assert outcome.disposition is Disposition.REFUSED
    assert outcome.error == "ssrf_refused"
    assert outcome.status_code is None
    assert "127.0.0.1 is loopback" in (outcome.detail or "")
    assert resolver.calls == 2
    assert server.hits == 0


async def test_the_injected_resolver_is_what_the_connection_uses(server: CountingServer) -> None:
    # Control for the rebinding test: the same fake, allowed, really reaches the server,
    # so the refusal above is the guard's doing and not a failed lookup.
    resolver = FakeResolver([["127.0.0.1"]])
    async with WebhookSender(LOOPBACK_ALLOWED, resolver=resolver, timeout_s=5.0) as sender:
        outcome = await sender.post(f"http://rebind.example:{server.port}/hook", b"{}", {})
    assert outcome.disposition is Disposition.DELIVERED
    assert outcome.status_code == 204
    assert server.hits == 1
    assert resolver.hosts == ["rebind.example"]


@pytest.mark.parametrize("host", ["a" * 64 + ".example.org", "a..example.org"])
async def test_a_host_that_is_not_a_host_name_is_refused_not_merely_unresolvable(host: str) -> None:
    """The system resolver's IDNA codec raises a UnicodeError for a label over 63 characters or
    an empty one (it escaped as a 500); such a sink never resolves, so even validate=false
    refuses it."""
    with pytest.raises(SinkRefused, match="not a valid host name") as refused:
        await check_sink(f"http://{host}/hook", DEFAULT)
    assert not isinstance(refused.value, SinkUnresolvable)
