"""Sink address guard against server-side request forgery (SSRF).

A subscriber chooses the sink URL, so without a guard the hub could be made to POST
into its own network (cloud metadata at 169.254.169.254, databases on 10.x, admin
ports on loopback). Two checks use the same :class:`NetworkPolicy`:

* :func:`check_sink`, when a subscription is created or its sink changes: refuse an IP
  literal that is blocked, or a host of which *any* resolved address is blocked
  (the API answers 400);
* at connect time, in the delivery client's resolver (``sender.GuardedResolver``), so
  the address actually connected to is the one checked; a DNS answer that changes
  between the two checks (DNS rebinding) cannot slip through.

Blocked unless inside an allow-listed network: loopback, RFC 1918 private, link-local,
CGNAT, "this network", documentation, benchmarking, multicast, reserved and
broadcast IPv4; for IPv6 everything outside global unicast 2000::/3 (so loopback,
unspecified, ULA fc00::/7, link-local, multicast, IPv4-compatible), plus the
documentation and IETF-protocol blocks inside it. IPv6 forms that embed an IPv4
address (IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16, Teredo) are
judged by the IPv4 address they reach.

The tables are explicit rather than ``ipaddress``'s ``is_private``/``is_global``,
whose exact sets changed across Python patch releases.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Protocol
from urllib.parse import urlsplit

__all__ = [
    "IPAddress",
    "IPNetwork",
    "NetworkPolicy",
    "Resolver",
    "SinkRefused",
    "SinkUnresolvable",
    "SystemResolver",
    "check_sink",
    "ip_literal",
    "sink_host_port",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


class SinkRefused(ValueError):
    """The sink may not be used: it is or resolves to a blocked address, or is malformed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SinkUnresolvable(SinkRefused):
    """The sink's host name does not resolve (may be temporary; the API may choose)."""


_BLOCKED_V4: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(cidr), label)
    for cidr, label in (
        ("0.0.0.0/8", "'this network' (unspecified)"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved / broadcast"),
    )
)

_GLOBAL_UNICAST_V6 = IPv6Network("2000::/3")
_BLOCKED_V6: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(cidr), label)
    for cidr, label in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fc00::/7", "unique local (ULA)"),
        ("fe80::/10", "link-local"),
        ("ff00::/8", "multicast"),
        ("2001::/23", "IETF protocol assignments (incl. Teredo)"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
    )
)
_MAPPED = IPv6Network("::ffff:0:0/96")
_NAT64 = IPv6Network("64:ff9b::/96")


def _as_address(ip: IPAddress | str) -> IPAddress:
    if isinstance(ip, str):
        # Resolvers give link-local IPv6 with a zone ("fe80::1%eth0"); the zone does not
        # change which network the address is in.
        ip = ip_address(ip.split("%", 1)[0])
    elif isinstance(ip, IPv6Address) and ip.scope_id:
        ip = IPv6Address(int(ip))
    return ip


@dataclass(frozen=True, init=False)
class NetworkPolicy:
    """Which addresses sinks may reach: everything public, plus ``allow`` networks.

    ``allow`` is the ``KOPPELHUB_DELIVERY_ALLOW_NETWORKS`` allow-list for deployments
    that deliver to internal targets (and for tests, ``127.0.0.0/8``).
    """

    allow: tuple[IPNetwork, ...] = ()

    def __init__(self, allow: Iterable[IPNetwork] = ()) -> None:
        object.__setattr__(self, "allow", tuple(allow))

    @classmethod
    def parse(cls, text: str | Iterable[str]) -> NetworkPolicy:
        """Build from comma-separated CIDRs (``"127.0.0.0/8, ::1/128"``) or a list of them.

        A bare address counts as a single-host network. Raises ``ValueError`` naming
        the bad entry; host bits set (``10.0.0.5/8``) are an error, not silently widened.
        """
        entries = text.split(",") if isinstance(text, str) else list(text)
        networks: list[IPNetwork] = []
        for entry in entries:
            cidr = entry.strip()
            if not cidr:
                continue
            try:
                networks.append(ip_network(cidr, strict=True))
            except ValueError as e:
                raise ValueError(f"invalid network in allow-list: {cidr!r} ({e})") from e
        return cls(networks)

    def _allow_listed(self, addr: IPAddress) -> bool:
        return any(addr.version == net.version and addr in net for net in self.allow)

    def refusal_reason(self, ip: IPAddress | str) -> str | None:
        """Why ``ip`` is refused, or ``None`` when a sink may connect to it."""
        addr = _as_address(ip)
        if self._allow_listed(addr):
            return None
        if isinstance(addr, IPv4Address):
            for net, label in _BLOCKED_V4:
                if addr in net:
                    return f"{addr} is {label}"
            return None
        return self._refusal_v6(addr)

    def _refusal_v6(self, addr: IPv6Address) -> str | None:
        # Addresses that reach an IPv4 host are judged by that host: the mapped and
        # NAT64 forms entirely, 6to4 and Teredo in addition to the IPv6 rules.
        if addr in _MAPPED or addr in _NAT64:
            embedded = IPv4Address(int(addr) & 0xFFFFFFFF)
            reason = self.refusal_reason(embedded)
            return None if reason is None else f"{addr} embeds {reason}"
        embedded_v4 = addr.sixtofour or (addr.teredo[1] if addr.teredo else None)
        if embedded_v4 is not None:
            reason = self.refusal_reason(embedded_v4)
            if reason is not None:
                return f"{addr} embeds {reason}"
        for net, label in _BLOCKED_V6:
            if addr in net:
                return f"{addr} is {label}"
        if addr not in _GLOBAL_UNICAST_V6:
            return f"{addr} is not a global unicast address"
        return None

    def is_allowed(self, ip: IPAddress | str) -> bool:
        """Whether a sink may connect to ``ip``."""
        return self.refusal_reason(ip) is None


def ip_literal(host: str) -> IPAddress | None:
    """The address if ``host`` is an IP literal, ``None`` for a host name.

    Raises :class:`SinkRefused` for legacy numeric forms (``2130706433``, ``0177.0.0.1``,
    ``127.1``): HTTP clients skip DNS for all-numeric hosts but the C library still
    maps them onto an address, so they would bypass a resolver-based guard.
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return _as_address(bare)
    except ValueError:
        pass
    if ":" in bare or bare.replace(".", "").isdigit():
        raise SinkRefused(f"{host!r} is not a canonical IP address")
    return None


def sink_host_port(url: str) -> tuple[str, int]:
    """Host and port of an http(s) URL; :class:`SinkRefused` for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise SinkRefused(f"sink is not a valid URL: {e}") from e
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise SinkRefused("sink must be an http:// or https:// URL")
    if not parts.hostname:
        raise SinkRefused("sink must name a host")
    return parts.hostname, port if port is not None else (443 if scheme == "https" else 80)


class Resolver(Protocol):
    """Anything that resolves like aiohttp's ``AbstractResolver`` (which satisfies this).

    Each result must carry the resolved address under ``"host"``.
    """

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> Sequence[Mapping[str, object]]: ...


class SystemResolver:
    """Resolver over the C library's ``getaddrinfo`` (in asyncio's thread pool).

    Asks for every address family and all records, unlike the connect-time resolver,
    so ``check_sink`` sees every address a later connection might use.
    """

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> Sequence[Mapping[str, object]]:
        """Resolve ``host``; ``socket.gaierror`` when it does not resolve."""
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, family=family, type=socket.SOCK_STREAM
        )
        return [
            {"hostname": host, "host": str(sockaddr[0]), "port": port, "family": fam}
            for fam, _, _, _, sockaddr in infos
        ]


async def check_sink(url: str, policy: NetworkPolicy, resolver: Resolver | None = None) -> None:
    """Refuse a sink whose host is, or resolves to, any blocked address.

    Raises :class:`SinkRefused` (a ``ValueError``; :class:`SinkUnresolvable` when DNS
    has no answer). Passing this check does not make later deliveries safe on its own:
    DNS can change, which is why the sender checks again at connect time.
    """
    host, port = sink_host_port(url)
    literal = ip_literal(host)
    if literal is not None:
        reason = policy.refusal_reason(literal)
        if reason is not None:
            raise SinkRefused(f"sink address {reason}")
        return
    resolver = resolver if resolver is not None else SystemResolver()
    try:
        results = await resolver.resolve(host, port, family=socket.AF_UNSPEC)
    except OSError as e:
        raise SinkUnresolvable(f"sink host {host!r} does not resolve: {e}") from e
    except UnicodeError as e:  # from the IDNA codec: an empty label, or one over 63 characters
        raise SinkRefused(f"sink host {host!r} is not a valid host name: {e}") from e
    if not results:
        raise SinkUnresolvable(f"sink host {host!r} does not resolve")
    for result in results:
        address = result.get("host")
        try:
            reason = policy.refusal_reason(str(address))
        except ValueError as e:
            raise SinkRefused(f"sink host {host!r} resolved to a non-address {address!r}") from e
        if reason is not None:
            raise SinkRefused(f"sink host {host!r} resolves to {reason}")
