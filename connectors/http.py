"""HTTP for API connectors (``rest``, ``signalen``): auth, rate limits, retries, diagnostics.

Every request goes through the transport the hub injects (``ConnectorContext.egress``: the
SSRF guard at connect time, with the connectors' allow-list), or the context's test transport.
Auth is one shared model: a bearer token, basic, an API-key header or OAuth2 client
credentials (:class:`connectors.oauth2.ClientCredentials`, cached and refreshed), plus an
optional client certificate (mTLS) and proxy (an FSC outway), which the egress applies.

429 and 503 wait for ``Retry-After`` (bounded) and try again; ``X-RateLimit-Remaining: 0``
holds the next request until ``X-RateLimit-Reset``. What failed last (method, URL without
credentials, status, the start of the answer) is kept in :attr:`ApiClient.last` for the run's
diagnostics; errors themselves quote nothing the server sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from connectors.base import ClientTls, ConnectorContext, SourceRefused, SourceUnavailable
from connectors.oauth2 import ClientCredentials

__all__ = ["ApiAuth", "ApiClient", "Busy", "OAuth2Config", "base_url", "excerpt", "http_url", "retry_after"]


def http_url(value: str) -> str:
    """Config validator: a URL a connector reads is http(s); anything else is refused at once."""
    if not value.lower().startswith(("http://", "https://")):
        raise ValueError("must be an http(s) URL")
    return value


def base_url(value: str) -> str:
    """Config validator: an http(s) base URL that paths are appended to, without its trailing slash."""
    return http_url(value).rstrip("/")


EXCERPT_CHARS = 512
#: Longest wait for one Retry-After / rate-limit reset; longer: the run fails and is retried later.
MAX_WAIT_S = 60.0


class OAuth2Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokenUrl: str
    clientId: str
    clientSecret: SecretStr
    scope: str | None = None

    @field_validator("tokenUrl")
    @classmethod
    def _token_url(cls, value: str) -> str:
        """An http(s) URL that parses, without credentials: the client's go in ``clientId`` and
        ``clientSecret`` (an HTTP client refuses a request with both)."""
        http_url(value)
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises for a port that is not one
        except ValueError as e:
            raise ValueError(f"is not a valid URL: {e}") from e
        if not parts.hostname:
            raise ValueError("must name a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("may not carry credentials: give them as clientId and clientSecret")
        return value


class BasicAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str
    password: SecretStr


class ApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    header: str = Field(min_length=1, description="Header name, e.g. X-Api-Key.")
    value: SecretStr


class ApiAuth(BaseModel):
    """At most one of ``token``, ``basic``, ``apiKey``, ``oauth2``; secrets are write-only."""

    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = Field(None, description="Static bearer token.")
    basic: BasicAuth | None = None
    apiKey: ApiKey | None = None
    oauth2: OAuth2Config | None = Field(None, description="OAuth2 client credentials.")
    certificate: str | None = Field(None, description="PEM client certificate (mutual TLS).")
    privateKey: SecretStr | None = Field(None, description="PEM key of the client certificate.")
    caCertificate: str | None = Field(None, description="PEM CA to trust besides the system's.")
    proxy: str | None = Field(None, description="HTTP(S) proxy URL, e.g. an FSC outway.")

    @model_validator(mode="after")
    def _one_scheme(self) -> ApiAuth:
        chosen = [n for n in ("token", "basic", "apiKey", "oauth2") if getattr(self, n) is not None]
        if len(chosen) > 1:
            raise ValueError(f"choose one of token, basic, apiKey, oauth2 (got {', '.join(chosen)})")
        if (self.certificate is None) != (self.privateKey is None):
            raise ValueError("certificate and privateKey go together")
        return self


class Busy(Exception):
    """429/503: wait ``wait_s`` and try again."""

    def __init__(self, status: int, wait_s: float) -> None:
        super().__init__(f"answered {status}")
        self.status, self.wait_s = status, wait_s


def excerpt(response: httpx.Response) -> str:
    return response.content[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")[:EXCERPT_CHARS]


def _shown(url: httpx.URL) -> str:
    return str(url.copy_with(username=None, password=None))


def _request(method: str, url: str) -> str:
    """``method url`` for an error or the diagnostics: the URL without its credentials."""
    try:
        return f"{method} {_shown(httpx.URL(url))}"
    except httpx.InvalidURL:
        return f"{method} (a URL that is not valid)"


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` value (delay-seconds or HTTP-date, RFC 9110 §10.2.3);
    None when absent or unparsable (not trusted)."""
    text = (value or "").strip()
    if text.isascii() and text.isdigit():  # "²".isdigit() is true too
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _reset_in(headers: httpx.Headers) -> float | None:
    """Seconds until the rate limit resets, when ``X-RateLimit-Remaining`` says none are left."""
    if headers.get("x-ratelimit-remaining", "").strip() != "0":
        return None
    raw = headers.get("x-ratelimit-reset", "").strip()
    try:
        value = float(raw)
    except ValueError:
        return 1.0
    return max(0.0, value - time.time()) if value > 1e9 else value  # epoch seconds or a delay


def _plain(url: str) -> bool:
    """An absolute http(s) URL of printable ASCII without spaces: one httpx would send as it
    is, so :meth:`ApiClient._direct` may pass it on without httpx's parser."""
    return url.startswith(("http://", "https://")) and url.isascii() and url.isprintable() and " " not in url


def _json_body(value: Any) -> bytes:
    """A JSON body as httpx 0.28 encodes ``json=`` (compact, UTF-8, no NaN)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class _Answer(httpx.Response):
    """A response read whole by the egress; its :attr:`request` is built only when asked for
    (error reports name the method and URL)."""

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        content: bytes,
        method: str,
        url: str,
        sent: dict[str, str],
        body: bytes | None,
    ) -> None:
        super().__init__(status, headers=headers, content=content)
        self._asked = (method, url, sent, body)

    @property
    def request(self) -> httpx.Request:
        if self._request is None:
            method, url, sent, body = self._asked
            self._request = httpx.Request(method, url, headers=sent, content=body)
        return self._request

    @request.setter
    def request(self, value: httpx.Request) -> None:
        self._request = value


class ApiClient:
    """One connector's HTTP session (``async with``); see the module docstring."""

    def __init__(
        self,
        ctx: ConnectorContext,
        auth: ApiAuth | None,
        *,
        attempts: int = 4,
        note: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.ctx, self.auth, self.attempts, self._report = ctx, auth or ApiAuth(), attempts, note
        self.last: dict[str, Any] | None = None
        self.requests = 0
        self._not_before = 0.0
        a = self.auth
        transport = ctx.http_transport
        if transport is None:
            if ctx.egress is None:
                raise SourceRefused("no egress configured: this process may not make connector requests")
            tls = None
            if a.certificate or a.caCertificate:
                key = a.privateKey.get_secret_value() if a.privateKey else None
                tls = ClientTls(a.certificate, key, a.caCertificate)
            transport = ctx.egress(tls=tls, proxy=a.proxy)
        flow: httpx.Auth | None = None
        if a.basic:
            flow = httpx.BasicAuth(a.basic.username, a.basic.password.get_secret_value())
        elif a.oauth2:
            o = a.oauth2
            flow = ClientCredentials(o.tokenUrl, o.clientId, o.clientSecret.get_secret_value(), o.scope)
        self._transport, self._flow = transport, flow
        self._timeout = httpx.Timeout(ctx.http_timeout_s).as_dict()
        self.http = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            timeout=ctx.http_timeout_s,
            trust_env=False,
            auth=flow,
        )
        self._defaults = dict(self.http.headers)  # User-Agent, Accept, Accept-Encoding as httpx sends

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.http.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _headers(self) -> dict[str, str]:
        a = self.auth
        if a.token is not None:
            return {"Authorization": f"Bearer {a.token.get_secret_value()}"}
        if a.apiKey is not None:
            return {a.apiKey.header: a.apiKey.value.get_secret_value()}
        return {}

    async def _once(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        wait = self._not_before - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        headers = {**(await self._headers()), **kwargs.pop("headers", {})}
        self.requests += 1
        try:
            if self._flow is None:
                response = await self._direct(method, url, headers, kwargs)
            else:  # basic and OAuth2 are httpx auth flows: the client runs them
                response = await self.http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as e:
            request = _request(method, url)
            self._keep({"request": request, "error": type(e).__name__})
            raise SourceUnavailable(f"{request}: {type(e).__name__}") from e
        reset = _reset_in(response.headers)
        if reset is not None:
            self._not_before = time.monotonic() + min(reset, MAX_WAIT_S)
        if response.status_code in (429, 503):
            self._note(response)
            after = retry_after(response.headers.get("retry-after"))
            raise Busy(response.status_code, after if after is not None else (reset or 1.0))
        return response

    async def _direct(
        self, method: str, url: str, headers: dict[str, str], kwargs: dict[str, Any]
    ) -> httpx.Response:
        """The request straight to the transport. ``AsyncClient.request`` cost about half of a
        write-back's HTTP CPU on top of the transport (merging the URL, headers and cookies into
        a new request, then parsing every answer for cookies through :mod:`http.cookiejar`),
        none of which a connector uses: the URLs are absolute, redirects are not followed, and
        cookies are not kept (the egress uses aiohttp's ``DummyCookieJar`` too).

        A request with at most a JSON body to a plain URL skips httpx's request and response
        streaming too (:meth:`hub.adapters.egress.AiohttpTransport.exchange`): its URL parser
        was a tenth of a write-back's hub CPU. The request is built only when asked for
        (diagnostics), with the same bytes on the wire as httpx would send."""
        exchange = getattr(self._transport, "exchange", None)
        if exchange is not None and kwargs.keys() <= {"json"} and _plain(url):
            sent = {**self._defaults, **headers}
            body = None
            if "json" in kwargs:
                sent["Content-Type"] = "application/json"
                body = _json_body(kwargs["json"])
            status, raw, content = await exchange(method, url, list(sent.items()), body, self._timeout)
            return _Answer(status, raw, content, method, url, sent, body)
        request = httpx.Request(
            method,
            url,
            headers={**self._defaults, **headers},
            extensions={"timeout": self._timeout},
            **kwargs,
        )
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    def _keep(self, exchange: dict[str, Any]) -> None:
        self.last = exchange
        if self._report is not None:
            self._report(exchange)

    def _note(self, response: httpx.Response) -> None:
        self._keep(
            {
                "request": f"{response.request.method} {_shown(response.request.url)}",
                "status": response.status_code,
                "response": excerpt(response),
            }
        )

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request, waiting out 429/503 (up to :data:`MAX_WAIT_S` each, ``attempts`` in
        all); :class:`SourceUnavailable` when it stays busy or the network fails. The first
        attempt runs without tenacity (building its retry state per request was a twentieth of
        a write-back's HTTP CPU); only a busy answer enters the retry loop."""
        try:
            return await self._attempt(method, url, kwargs)
        except Busy as b:
            busy = b
        if self.attempts <= 1:
            raise self._still_busy(method, url, busy) from busy
        await asyncio.sleep(busy.wait_s)

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return error.wait_s if isinstance(error, Busy) else 0.0

        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(Busy),
                wait=wait,
                stop=stop_after_attempt(self.attempts - 1),
                reraise=True,
            ):
                with attempt:
                    return await self._attempt(method, url, kwargs)
        except Busy as e:
            raise self._still_busy(method, url, e) from e
        raise AssertionError("AsyncRetrying either returns or raises")

    def _still_busy(self, method: str, url: str, busy: Busy) -> SourceUnavailable:
        return SourceUnavailable(f"{_request(method, url)} answered {busy.status} {self.attempts} times")

    async def _attempt(self, method: str, url: str, kwargs: dict[str, Any]) -> httpx.Response:
        try:
            return await self._once(method, url, **dict(kwargs))
        except Busy as b:
            if b.wait_s > MAX_WAIT_S:
                raise SourceUnavailable(f"{_request(method, url)}: busy for {b.wait_s:.0f} s") from b
            raise

    def failed(self, response: httpx.Response, what: str) -> SourceUnavailable | SourceRefused:
        """The error for an unexpected answer (noted for diagnostics): 401/403 and other 4xx
        are permanent for this config (refused), the rest temporary."""
        self._note(response)
        request = f"{response.request.method} {_shown(response.request.url)}"
        message = f"{what}: {request} answered {response.status_code}"
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            return SourceRefused(message)
        return SourceUnavailable(message)
