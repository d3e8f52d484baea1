"""Outbound HTTP of connectors: every connection goes to an address the SSRF guard checked.

Checking a URL's host and then letting the HTTP client resolve it again is not enough: DNS
can answer a public address to the check and 127.0.0.1 to the connect (DNS rebinding). So
connectors resolve once, inside the connection itself: :class:`GuardedNetworkBackend` is
httpx's (httpcore's) network backend, resolves the host with the webhook sender's
:class:`~subscriptions.sender.GuardedResolver` (the same rule: drop every address the
:class:`~subscriptions.ssrf.NetworkPolicy` refuses) and connects to an address it returned.
TLS still verifies and sends SNI for the host name, and the ``Host`` header is the name,
because httpcore only asks the backend for a socket.

This is I/O on the outside network, so it is an adapter: ``connectors/`` stays pure and gets
the transport injected (``ConnectorContext.egress``, built by the composition root from
KOPPELHUB_CONNECTORS_ALLOW_NETWORKS with :func:`egress`). A connector may ask for a client
certificate or an extra CA (``tls``, mutual TLS) and a proxy (an FSC outway); the proxy is
connected to through the same guard, so the address checked is the proxy's.
"""

from __future__ import annotations

import functools
import socket
import ssl
from collections.abc import Iterable

import httpcore
import httpx
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

from connectors.base import ClientTls, Egress, SourceRefused
from subscriptions.answers import BlockedAddressError
from subscriptions.egress import client_ssl_context
from subscriptions.sender import GuardedResolver
from subscriptions.ssrf import NetworkPolicy, SinkRefused, ip_literal

__all__ = ["GuardedNetworkBackend", "GuardedTransport", "egress"]


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to addresses ``policy`` allows, resolving each host once.

    ``resolver`` replaces the DNS lookup (tests inject a scripted one); the policy is applied
    to whatever it answers. A host whose every address is refused raises
    :class:`SourceRefused` (nothing is sent); one that does not resolve raises
    ``httpcore.ConnectError`` (httpx: ``ConnectError``, a temporary failure).
    """

    def __init__(self, policy: NetworkPolicy, resolver: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner_resolver = resolver
        self._guard: GuardedResolver | None = None
        self._sockets = httpcore.AnyIOBackend()

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses a connection to ``host`` may use, in the resolver's order."""
        try:
            literal = ip_literal(host)
        except SinkRefused as e:  # legacy numeric forms such as 2130706433
            raise SourceRefused(f"{host}: {e.reason}") from e
        if literal is not None:
            reason = self._policy.refusal_reason(literal)
            if reason is not None:
                raise SourceRefused(f"{host}: {reason}")
            return [str(literal)]
        if self._guard is None:  # ThreadedResolver needs the running loop: built on first use
            self._guard = GuardedResolver(self._policy, self._inner_resolver or ThreadedResolver())
        try:
            results = await self._guard.resolve(host, port, family=socket.AF_UNSPEC)
        except BlockedAddressError as e:
            raise SourceRefused(e.reason) from e
        except OSError as e:
            raise httpcore.ConnectError(f"{host} does not resolve: {e}") from e
        return [str(result["host"]) for result in results]

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first checked address of ``host`` that accepts."""
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in await self.addresses(host, port):
            try:
                return await self._sockets.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                failure = e
        assert failure is not None  # addresses() never answers an empty list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise SourceRefused("connectors do not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._sockets.sleep(seconds)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """The verifying client context, built once: loading the CA store costs milliseconds, which a
    write-back paid per request."""
    return httpx.create_ssl_context(trust_env=False)


@functools.lru_cache(maxsize=64)
def tls_context(tls: ClientTls) -> ssl.SSLContext:
    """The client context for ``tls`` (built once per distinct PEM material); ``SourceRefused``
    when the certificate, key or CA does not load."""
    try:
        return client_ssl_context(tls.certificate, tls.private_key, ca_certificate=tls.ca_certificate)
    except ValueError as e:
        raise SourceRefused(str(e)) from e


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (TLS verification, pooling, error mapping) on a
    :class:`GuardedNetworkBackend`, ignoring proxy environment variables.

    ``ssl_context`` replaces the default verifying context (e.g. a client certificate or an
    extra CA for a source's mTLS); ``proxy`` sends every request through that HTTP(S) proxy."""

    def __init__(
        self,
        policy: NetworkPolicy,
        resolver: AbstractResolver | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | None = None,
    ) -> None:
        super().__init__(trust_env=False)
        # httpx has no public hook for the network backend; its pool (httpcore's public API)
        # is rebuilt with the same TLS context and the guarded backend.
        context = ssl_context or _default_ssl_context()
        backend = GuardedNetworkBackend(policy, resolver)
        if proxy is None:
            self._pool = httpcore.AsyncConnectionPool(ssl_context=context, network_backend=backend)
        else:
            self._pool = httpcore.AsyncHTTPProxy(
                proxy_url=httpcore.URL(proxy), ssl_context=context, network_backend=backend
            )


def egress(policy: NetworkPolicy, resolver: AbstractResolver | None = None) -> Egress:
    """The transport factory a :class:`~connectors.base.ConnectorContext` carries: a new
    guarded transport per client (a pool belongs to one run or one write-back client)."""

    def make(*, tls: ClientTls | None = None, proxy: str | None = None) -> httpx.AsyncBaseTransport:
        return GuardedTransport(
            policy, resolver, ssl_context=tls_context(tls) if tls is not None else None, proxy=proxy
        )

    return make
