"""The webhook HTTP sender: the only I/O in ``subscriptions``.

One shared ``aiohttp.ClientSession`` (measured several times faster than httpx for
this load, see INFRA.md) whose connector resolves through :class:`GuardedResolver`,
so every address actually connected to passes the SSRF :class:`NetworkPolicy`.
aiohttp never asks the resolver about IP-literal hosts, so :meth:`WebhookSender.post`
checks those itself before sending.

``post`` never raises for network or HTTP problems: every attempt ends in a
:class:`DeliveryOutcome` that the dispatcher logs and acts on.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from subscriptions.answers import (
    BlockedAddressError,
    Disposition,
    classify_exception,
    classify_status,
    parse_retry_after,
)
from subscriptions.ssrf import NetworkPolicy, SinkRefused, ip_literal

__all__ = [
    "EXCERPT_CHARS",
    "BlockedAddressError",
    "DeliveryOutcome",
    "Disposition",
    "GuardedResolver",
    "WebhookSender",
    "parse_retry_after",
]

EXCERPT_CHARS = 512
# Enough bytes for EXCERPT_CHARS characters of UTF-8; the rest of a body is not read.
_EXCERPT_BYTES = EXCERPT_CHARS * 4
_USER_AGENT = "Koppelhub-Webhooks/1.0"
_CHECKED_MAX = 4096  # sink URLs whose verdict is kept


@dataclass(frozen=True, kw_only=True)
class DeliveryOutcome:
    """The result of one delivery attempt.

    ``error`` is a short class for logs and the delivery log (``timeout``,
    ``connection_error``, ``dns_error``, ``tls_error``, ``protocol_error``,
    ``ssrf_refused``, ``invalid_url``, ``http_<status>``); ``detail`` says more.
    ``retry_after_s`` is set from ``Retry-After`` on 429 and 503.
    """

    disposition: Disposition
    status_code: int | None
    error: str | None
    duration_ms: float
    response_excerpt: str = ""
    retry_after_s: float | None = None
    detail: str | None = None
    #: Response headers and body: only filled by :meth:`WebhookSender.request` (handshake, tokens).
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def delivered(self) -> bool:
        """True for a 2xx answer."""
        return self.disposition is Disposition.DELIVERED


class GuardedResolver(AbstractResolver):
    """Connect-time SSRF guard: drops blocked addresses from every DNS answer.

    Wraps aiohttp's default resolver (or ``inner``, e.g. a fake in tests). Because the
    connector connects only to what this returns, the address checked is the address
    used, whatever DNS said when the subscription was created (rebinding-safe). A
    mixed answer keeps its allowed addresses; an answer with none left raises
    :class:`BlockedAddressError`.
    """

    def __init__(self, policy: NetworkPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._owns_inner = inner is None
        # DefaultResolver needs a running loop, so build it lazily on first use.
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve through the inner resolver and keep only permitted addresses."""
        if self._inner is None:
            self._inner = DefaultResolver()
        results = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        reasons: list[str] = []
        for result in results:
            try:
                reason = self._policy.refusal_reason(result["host"])
            except ValueError:
                reason = f"{result['host']!r} is not an IP address"
            if reason is None:
                allowed.append(result)
            else:
                reasons.append(reason)
        if not allowed:
            detail = "; ".join(reasons) if reasons else "no addresses"
            raise BlockedAddressError(f"{host} resolves to {detail}")
        return allowed

    async def close(self) -> None:
        """Close the inner resolver if this resolver created it."""
        if self._inner is not None and self._owns_inner:
            await self._inner.close()


async def _read_start(response: aiohttp.ClientResponse, limit: int) -> bytes:
    # Read only the start: a hostile or broken sink must not make us buffer megabytes.
    chunks = bytearray()
    while len(chunks) < limit:
        chunk = await response.content.read(limit - len(chunks))
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks)


def _excerpt(raw: bytes) -> str:
    return raw[:_EXCERPT_BYTES].decode("utf-8", errors="replace")[:EXCERPT_CHARS]


class WebhookSender:
    """POSTs webhook deliveries over one pooled, SSRF-guarded aiohttp session.

    Use as ``async with WebhookSender(policy) as sender: await sender.post(...)``.
    ``resolver`` replaces the inner DNS resolver (tests inject fakes); the policy is
    applied to whatever it answers. Cookies are never stored (one session serves
    every subscriber) and proxy environment variables are ignored (a proxy would
    resolve the sink itself, past the guard).
    """

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        timeout_s: float = 15.0,
        max_connections: int = 100,
        max_connections_per_host: int = 0,
        resolver: AbstractResolver | None = None,
        user_agent: str = _USER_AGENT,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_connections = max_connections
        self._max_per_host = max_connections_per_host
        self._inner_resolver = resolver
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._resolver: GuardedResolver | None = None
        # Parsed sink URL and the guard's verdict on it, per URL string: a subscription sends to
        # the same sink every time, and neither the URL nor the policy changes.
        self._checked: dict[str, tuple[URL, tuple[str, str] | None]] = {}

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the session (needs a running event loop)."""
        if self._session is not None:
            return
        self._resolver = GuardedResolver(self._policy, self._inner_resolver)
        connector = aiohttp.TCPConnector(
            resolver=self._resolver,
            limit=self._max_connections,
            limit_per_host=self._max_per_host,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            headers={"User-Agent": self._user_agent},
        )

    async def close(self) -> None:
        """Close the session, its connections and the resolver."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    def _refusal(self, url: URL) -> tuple[str, str] | None:
        """(error, detail) when the URL must not be sent to at all, else None."""
        if url.scheme not in ("http", "https") or not url.raw_host:
            return "invalid_url", "sink must be an absolute http(s) URL"
        # aiohttp skips the resolver for IP literals, so the guard has to look here.
        try:
            literal = ip_literal(url.raw_host)
        except SinkRefused as e:
            return "ssrf_refused", e.reason
        if literal is not None:
            reason = self._policy.refusal_reason(literal)
            if reason is not None:
                return "ssrf_refused", reason
        return None

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout_s: float | None = None,
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> DeliveryOutcome:
        """POST ``body`` to ``url`` once; redirects are not followed.

        Returns an outcome for every network or HTTP result; raises only when the
        sender is not started (a programming error) or the task is cancelled. ``proxy``
        sends through an HTTP(S) proxy (its address passes the guard); ``ssl_context``
        carries a client certificate for mutual TLS.
        """
        return await self.request(
            "POST", url, body, headers, timeout_s=timeout_s, proxy=proxy, ssl_context=ssl_context
        )

    async def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        *,
        timeout_s: float | None = None,
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        keep_body: int = 0,
    ) -> DeliveryOutcome:
        """Any one request through the guard (handshake OPTIONS, token POST, delivery).

        ``keep_body`` > 0 keeps up to that many bytes of the response body and its headers
        in the outcome.
        """
        if self._session is None:
            raise RuntimeError("WebhookSender is not started; use 'async with'")
        started = time.perf_counter()
        checked = self._checked.get(url)
        if checked is None:
            try:
                target = URL(url)
            except (ValueError, TypeError) as e:
                return _refused(started, "invalid_url", str(e))
            if len(self._checked) >= _CHECKED_MAX:
                self._checked.clear()
            checked = self._checked[url] = (target, self._refusal(target))
        target, refusal = checked
        if refusal is None and proxy is not None:
            # The proxy is what we connect to; aiohttp skips the resolver for its IP literals too.
            try:
                refusal = self._refusal(URL(proxy))
            except (ValueError, TypeError) as e:
                return _refused(started, "invalid_url", f"proxy: {e}")
        if refusal is not None:
            return _refused(started, *refusal)

        timeout = self._timeout if timeout_s is None else aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._session.request(
                method,
                target,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=timeout,
                proxy=proxy,
                ssl=ssl_context if ssl_context is not None else True,
            ) as response:
                raw = await _read_start(response, max(keep_body, _EXCERPT_BYTES))
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
            return _failed(started, e)
        outcome = _answered(started, response, _excerpt(raw))
        if keep_body:
            outcome = replace(outcome, headers=dict(response.headers), body=raw[:keep_body])
        return outcome


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _refused(started: float, error: str, detail: str) -> DeliveryOutcome:
    return DeliveryOutcome(
        disposition=Disposition.REFUSED,
        status_code=None,
        error=error,
        duration_ms=_elapsed_ms(started),
        detail=detail,
    )


def _failed(started: float, exc: BaseException) -> DeliveryOutcome:
    disposition, error = classify_exception(exc)
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorDNSError) and isinstance(exc.os_error, BlockedAddressError):
        detail = exc.os_error.reason
    return DeliveryOutcome(
        disposition=disposition,
        status_code=None,
        error=error,
        duration_ms=_elapsed_ms(started),
        detail=detail,
    )


def _answered(started: float, response: aiohttp.ClientResponse, excerpt: str) -> DeliveryOutcome:
    status = response.status
    disposition, error = classify_status(status)
    detail = None
    if 300 <= status < 400:
        location = response.headers.get("Location")
        detail = f"redirect to {location or '(no Location)'} not followed"
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return DeliveryOutcome(
        disposition=disposition,
        status_code=status,
        error=error,
        duration_ms=_elapsed_ms(started),
        response_excerpt=excerpt,
        retry_after_s=retry_after,
        detail=detail,
    )
