"""Sink authentication and egress helpers: client certificates (mTLS) and OAuth2 tokens.

Secrets handled here are never logged: errors name the step that failed, not the values.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from subscriptions.sender import DeliveryOutcome

__all__ = ["OAuth2Tokens", "TokenUnavailable", "client_ssl_context"]

_TOKEN_BYTES = 64 * 1024
_DEFAULT_EXPIRES_S = 3600.0


def client_ssl_context(
    certificate: str | None = None, private_key: str | None = None, *, ca_certificate: str | None = None
) -> ssl.SSLContext:
    """A verifying TLS client context: presents this PEM certificate and key (mutual TLS) and
    trusts ``ca_certificate`` (PEM) besides the system's CAs, for sinks under a private CA.

    Raises ``ValueError`` when the pair or the CA does not load (bad PEM, key not matching).
    """
    context = ssl.create_default_context()
    if ca_certificate:
        try:
            context.load_verify_locations(cadata=ca_certificate)
        except (ssl.SSLError, ValueError, TypeError) as e:  # TypeError: not ASCII
            raise ValueError("the CA certificate does not load as PEM") from e
    if certificate is None or private_key is None:
        return context
    # load_cert_chain reads files only; a private temp dir, removed right after loading.
    with tempfile.TemporaryDirectory(prefix="koppelhub-mtls-") as folder:
        cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        for path, content in ((cert_path, certificate), (key_path, private_key)):
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(content)
        try:
            context.load_cert_chain(cert_path, key_path)
        except (ssl.SSLError, OSError) as e:
            raise ValueError("the client certificate and private key do not load as a PEM pair") from e
    return context


class TokenUnavailable(Exception):
    """No access token: the token endpoint failed or answered something unusable."""

    def __init__(self, error: str, outcome: DeliveryOutcome | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.outcome = outcome


class Requester(Protocol):
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
    ) -> DeliveryOutcome: ...


@dataclass
class _Token:
    value: str
    expires_at: float


class OAuth2Tokens:
    """Client-credentials access tokens, fetched once, cached until shortly before expiry.

    The token request goes through the same SSRF-guarded sender as deliveries. ``clock``
    is injectable for tests.
    """

    def __init__(
        self,
        requester: Requester,
        *,
        margin_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._requester = requester
        self._margin = margin_s
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0

    @staticmethod
    def cache_key(config: Mapping[str, Any]) -> str:
        return json.dumps(
            [config.get(k) for k in ("token_url", "client_id", "client_secret", "scope", "audience")]
        )

    def invalidate(self, config: Mapping[str, Any]) -> None:
        """Forget the cached token (the sink answered 401 with it)."""
        self._tokens.pop(self.cache_key(config), None)

    async def token(self, config: Mapping[str, Any], *, proxy: str | None = None) -> str:
        key = self.cache_key(config)
        cached = self._tokens.get(key)
        if cached is not None and cached.expires_at > self._clock():
            return cached.value
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one fetch per client, however many deliveries wait for it
            cached = self._tokens.get(key)
            if cached is not None and cached.expires_at > self._clock():
                return cached.value
            fresh = await self._fetch(config, proxy)
            self._tokens[key] = fresh
            return fresh.value

    async def _fetch(self, config: Mapping[str, Any], proxy: str | None) -> _Token:
        form = {"grant_type": "client_credentials"}
        for name in ("scope", "audience"):
            if config.get(name):
                form[name] = str(config[name])
        # RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
        basic = f"{quote(str(config['client_id']), safe='')}:{quote(str(config['client_secret']), safe='')}"
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "accept": "application/json",
            "authorization": "Basic " + base64.b64encode(basic.encode()).decode("ascii"),
        }
        self.fetches += 1
        outcome = await self._requester.request(
            "POST",
            str(config["token_url"]),
            urlencode(form).encode(),
            headers,
            proxy=proxy,
            keep_body=_TOKEN_BYTES,
        )
        if not outcome.delivered:
            raise TokenUnavailable(f"oauth2_{outcome.error or 'failed'}", outcome)
        try:
            answer = json.loads(outcome.body)
            value = answer["access_token"]
            expires_in = float(answer.get("expires_in", _DEFAULT_EXPIRES_S))
        except (ValueError, KeyError, TypeError) as e:
            raise TokenUnavailable("oauth2_invalid_response", outcome) from e
        if not isinstance(value, str) or not value:
            raise TokenUnavailable("oauth2_invalid_response", outcome)
        return _Token(value, self._clock() + max(0.0, expires_in - self._margin))
