"""Outbound HTTP of connectors: every connection goes to an address the SSRF guard checked.

Checking a URL's host and then letting the HTTP client resolve it again is not enough: DNS
can answer a public address to the check and 127.0.0.1 to the connect (DNS rebinding). So
connectors resolve once, inside the connection itself: :class:`AiohttpTransport` connects
through aiohttp with the webhook sender's :class:`~subscriptions.sender.GuardedResolver` (the
same rule: drop every address the :class:`~subscriptions.ssrf.NetworkPolicy` refuses), so the
address checked is the address used. TLS still verifies and sends SNI for the host name.

This is I/O on the outside network, so it is an adapter: ``connectors/`` stays pure, speaks
httpx's client API and gets the transport injected (``ConnectorContext.egress``, built by the
composition root from KOPPELHUB_CONNECTORS_ALLOW_NETWORKS with :func:`egress`). A connector may
ask for a client certificate or an extra CA (``tls``, mutual TLS) and a proxy (an FSC outway);
the proxy is connected to through the same guard, so the address checked is the proxy's.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Mapping

import aiohttp
import httpx
import yarl
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

from connectors.base import ClientTls, Egress, SourceRefused
from subscriptions.answers import BlockedAddressError
from subscriptions.egress import client_ssl_context
from subscriptions.sender import GuardedResolver
from subscriptions.ssrf import NetworkPolicy, SinkRefused, ip_literal

__all__ = ["AiohttpTransport", "egress", "tls_context"]


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


_CHUNK = 64 * 1024


class _Body(httpx.AsyncByteStream):
    """An aiohttp response body as httpx's stream: read as the connector reads it (a download
    streams to disk), released when httpx closes the response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk
        except TimeoutError as e:
            raise httpx.ReadTimeout("the source stopped sending") from e
        except aiohttp.ClientError as e:  # the message may quote what the server sent: named only
            raise httpx.ReadError(type(e).__name__) from e

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's transport interface on an aiohttp session whose resolver is the webhook
    sender's :class:`~subscriptions.sender.GuardedResolver` (the same connect-time guard; IP
    literals, which aiohttp does not resolve, are checked here, the proxy's too).

    Why not httpx's own pool: httpcore re-examines every pooled connection on each request
    and response, which under concurrency cost about 4 ms of wall time per request against a
    loopback server (aiohttp: 0.15 ms) and capped write-back at about 100 per second. The
    connectors keep httpx's client API (auth flows, streaming, errors); only the wire changes.
    Redirects are not followed, cookies not kept, bodies not decompressed here (httpx does it
    from the headers, as with its own transport)."""

    def __init__(
        self,
        policy: NetworkPolicy,
        resolver: AbstractResolver | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | None = None,
    ) -> None:
        self._policy, self._inner, self._proxy = policy, resolver, proxy
        self._ssl = ssl_context or _default_ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._verdicts: dict[str, str | None] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:  # needs the running loop: built on first use
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self._policy, self._inner or ThreadedResolver()), limit=64
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    def _check(self, host: str) -> None:
        """Refuse an IP literal the policy refuses. The verdict per host is kept (the policy
        is this transport's for good): parsing the host on every request was a hundredth of a
        write-back's CPU. Names are checked by the resolver at connect time, every time."""
        if host not in self._verdicts:
            if len(self._verdicts) >= 256:
                self._verdicts.clear()
            self._verdicts[host] = self._verdict(host)
        reason = self._verdicts[host]
        if reason is not None:
            raise SourceRefused(f"{host}: {reason}")

    def _verdict(self, host: str) -> str | None:
        try:
            literal = ip_literal(host)
        except SinkRefused as e:  # legacy numeric forms such as 2130706433
            return e.reason
        return self._policy.refusal_reason(literal) if literal is not None else None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        response = await self._send(
            request.method,
            yarl.URL(str(request.url), encoded=True),
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
            await request.aread() or None,
            timeouts,
        )
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_Body(response),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def exchange(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeouts: Mapping[str, float | None],
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One request with its whole answer read (status, raw headers, body), without httpx's
        request and response machinery: parsing the URL and streaming the body through httpx
        cost about a third of a write-back's HTTP CPU. ``url`` must already be a valid,
        encoded URL (:meth:`connectors.http.ApiClient` sends only those this way); the guard
        is the same as :meth:`handle_async_request`'s."""
        response = await self._send(method, yarl.URL(url, encoded=True), headers, body, timeouts)
        try:
            content = await response.read()
        except TimeoutError as e:
            raise httpx.ReadTimeout("the source stopped sending") from e
        except aiohttp.ClientError as e:  # the message may quote what the server sent: named only
            raise httpx.ReadError(type(e).__name__) from e
        finally:
            response.release()
        return response.status, list(response.raw_headers), content

    async def _send(
        self,
        method: str,
        url: yarl.URL,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeouts: Mapping[str, float | None],
    ) -> aiohttp.ClientResponse:
        self._check(url.host or "")
        if self._proxy is not None:
            self._check(httpx.URL(self._proxy).host)
        timeout = aiohttp.ClientTimeout(
            total=None, connect=timeouts.get("connect"), sock_read=timeouts.get("read")
        )
        try:
            return await self._open().request(
                method,
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                proxy=self._proxy,
                ssl=self._ssl,
                timeout=timeout,
            )
        except aiohttp.ClientConnectorDNSError as e:
            if isinstance(e.os_error, BlockedAddressError):
                raise SourceRefused(e.os_error.reason) from e
            raise httpx.ConnectError(f"{url.host} does not resolve") from e
        except aiohttp.ClientConnectorError as e:
            raise httpx.ConnectError(str(e.os_error) or type(e).__name__) from e
        except TimeoutError as e:
            raise httpx.ConnectTimeout("no answer within the timeout") from e
        except aiohttp.ClientResponseError as e:  # a malformed answer: named, never quoted
            raise httpx.RemoteProtocolError(type(e).__name__) from e
        except aiohttp.ClientError as e:
            raise httpx.ReadError(type(e).__name__) from e

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def egress(policy: NetworkPolicy, resolver: AbstractResolver | None = None) -> Egress:
    """The transport factory a :class:`~connectors.base.ConnectorContext` carries: a new
    guarded transport per client (a pool belongs to one run or one write-back client)."""

    def make(*, tls: ClientTls | None = None, proxy: str | None = None) -> httpx.AsyncBaseTransport:
        return AiohttpTransport(
            policy, resolver, ssl_context=tls_context(tls) if tls is not None else None, proxy=proxy
        )

    return make
