"""OAuth2 client credentials for API connectors, as an ``httpx.Auth`` flow.

The token request goes through the connector's own client, so the same SSRF-guarded transport
(and proxy, and client certificate) carries it. The token is cached until shortly before it
expires and fetched once however many requests wait for it; a 401 with a cached token fetches a
new one and sends the request once more (a revoked token). ``httpx.Auth`` is the library's own
seam for flows that need an extra request, so nothing here sends on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from urllib.parse import quote

import httpx

from connectors.base import SourceRefused, SourceUnavailable

__all__ = ["ClientCredentials"]

#: Lifetime assumed when the token endpoint names none.
DEFAULT_EXPIRES_S = 300.0
#: Renewed this long before it expires, so a request does not leave with a token about to lapse.
MARGIN_S = 30.0


class ClientCredentials(httpx.Auth):
    """Bearer tokens from ``token_url`` with the client-credentials grant (RFC 6749 §4.4)."""

    requires_response_body = True

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url, self.scope, self._clock = token_url, scope, clock
        # RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
        self._basic = httpx.BasicAuth(quote(client_id, safe=""), quote(client_secret, safe=""))
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    def _valid(self) -> str | None:
        return self._token if self._token is not None and self._expires_at > self._clock() else None

    def _token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials", **({"scope": self.scope} if self.scope else {})}
        request = httpx.Request("POST", self.token_url, data=form, headers={"accept": "application/json"})
        return next(self._basic.auth_flow(request))

    def _take(self, response: httpx.Response) -> str:
        """Keep the token the endpoint answered; a refusal (4xx) is permanent for this config."""
        self.fetches += 1
        if response.status_code != 200:
            message = f"the OAuth2 token endpoint answered {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                raise SourceRefused(message)
            raise SourceUnavailable(message)
        try:
            answer = response.json()
            token, expires_in = answer["access_token"], float(answer.get("expires_in", DEFAULT_EXPIRES_S))
        except (ValueError, KeyError, TypeError) as e:
            raise SourceUnavailable("the OAuth2 token endpoint answered no usable access_token") from e
        if not isinstance(token, str) or not token:
            raise SourceUnavailable("the OAuth2 token endpoint answered no usable access_token")
        self._token, self._expires_at = token, self._clock() + max(0.0, expires_in - MARGIN_S)
        return token

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        async with self._lock:  # one fetch, however many requests wait for it
            token = self._valid()
            if token is None:
                token = self._take((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        async with self._lock:
            if self._token == token:  # nobody renewed it meanwhile
                self._token = None
                token = self._take((yield self._token_request()))
            else:
                token = self._valid() or self._take((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {token}"
        yield request
