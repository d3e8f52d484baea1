"""OIDC bearer JWTs (e.g. Keycloak) → principals, with PyJWT and its JWKS client.

- Keys come from ``KOPPELHUB_OIDC_JWKS_URL``, or from the ``jwks_uri`` of the issuer's
  discovery document (``<issuer>/.well-known/openid-configuration``), fetched once.
- Keys are kept per ``kid``; a token with a ``kid`` not seen yet makes the JWKS client fetch
  the set again (a key rotation; at most once per cooldown), off the event loop; a kid still
  unknown is refused. A kept key is trusted for :data:`KEY_SECONDS`; then the set is fetched
  again, and a key the issuer no longer publishes (rotated out, or withdrawn after a leak) is
  refused from then on. When the issuer cannot be reached then, the key is kept for another
  period (logged): an issuer outage does not lock every caller out.
- Only RS256 and ES256 are accepted (so ``alg=none`` and an HS256 token "signed" with the
  public key are refused), and ``exp``, ``iss`` and ``aud`` are required and checked, ``nbf``
  when present. A refusal says which check failed (:class:`~hub.ports.credentials.CredentialRefused`, a 401).
- A verified token's principal is kept (by the token's SHA-256) for at most
  :data:`VERIFIED_SECONDS` and never past its ``exp``: a publisher sending the same JWT with
  every request pays the signature check (0.1 to 0.15 ms of CPU for RS256/ES256,
  ``benchmarks/auth_cost.py``) about once a minute instead of on every request. Refusals are
  not kept.
- The roles claim (default ``roles``) names Softwarecatalogus roles; the first known one in
  the matrix's order is the principal's role. A valid token without one is
  :class:`NoKnownRole` (a 403): who it is is known, what it may do is nothing. A token whose
  role has rights for its own organisation and that names none in the organisation claim
  (default ``organisatie``) is a 403 too, from the API's header check.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import structlog
from jwt import PyJWK, PyJWKClient

from hub.ports.credentials import CredentialRefused, NoKnownRole, Principal, Role

__all__ = ["ALGORITHMS", "KEY_SECONDS", "OidcConfig", "OidcVerifier"]

log = structlog.get_logger(__name__)

ALGORITHMS = ["RS256", "ES256"]
_FETCH_TIMEOUT_S = 5
#: How long a verified token's principal is kept at most (never past the token's ``exp``).
VERIFIED_SECONDS = 60.0
#: How many verified tokens are kept; the least recently used go first.
VERIFIED_MAX = 10_000
#: How long a fetched key is trusted before the issuer's set is asked again whether it still
#: publishes it (PyJWKClient's own default lifespan of the set).
KEY_SECONDS = 300.0


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks_url: str | None = None
    roles_claim: str = "roles"
    organisation_claim: str = "organisatie"
    #: An unknown kid refetches the JWKS at most this often: forged kids cannot hammer the issuer.
    refetch_cooldown_seconds: float = 10.0


def _discover(issuer: str) -> str:
    """The ``jwks_uri`` of the issuer's discovery document (blocking: run in a thread)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT_S) as response:  # noqa: S310 - operator's URL
        document = json.loads(response.read())
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise CredentialRefused("the issuer's discovery document names no jwks_uri")
    return jwks_uri


_CHECKS: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "the token has expired (exp)"),
    (jwt.ImmatureSignatureError, "the token is not valid yet (nbf)"),
    (jwt.InvalidIssuerError, "the token's issuer (iss) is not the configured KOPPELHUB_OIDC_ISSUER"),
    (jwt.InvalidAudienceError, "the token's audience (aud) does not include KOPPELHUB_OIDC_AUDIENCE"),
    (jwt.InvalidAlgorithmError, f"the token's algorithm is not allowed (only {', '.join(ALGORITHMS)})"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.MissingRequiredClaimError, "the token lacks a required claim"),
]


class OidcVerifier:
    """Verifies bearer JWTs against the issuer's keys; see the module docstring."""

    def __init__(self, config: OidcConfig, *, clock: Callable[[], float] = time.time) -> None:
        """``clock``: seconds since the epoch, for the verified-token cache and the keys' trust
        period only (the token's own checks are PyJWT's, on the real clock)."""
        self.config = config
        self._client: PyJWKClient | None = None
        self._keys: dict[str, tuple[PyJWK, float]] = {}  # kid -> key, trusted until (clock)
        self._lock = asyncio.Lock()
        self._clock = clock
        self._verified: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()

    def looks_like(self, token: str) -> bool:
        return token.count(".") == 2

    async def principal(self, token: str) -> Principal:
        cache_key = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        kept = self._verified.get(cache_key)
        if kept is not None and kept[1] > now:
            self._verified.move_to_end(cache_key)
            return kept[0]
        found, expires = await self._verify(token)
        self._verified[cache_key] = (found, min(expires, now + VERIFIED_SECONDS))
        self._verified.move_to_end(cache_key)
        while len(self._verified) > VERIFIED_MAX:
            self._verified.popitem(last=False)
        return found

    async def _verify(self, token: str) -> tuple[Principal, float]:
        """The principal of a token checked in full, and its ``exp``."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as e:
            raise CredentialRefused(f"the bearer token is not a valid JWT: {e}") from e
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise CredentialRefused(
                f"the token's algorithm {algorithm!r} is not allowed (only {', '.join(ALGORITHMS)})"
            )
        key = await self._key(str(header.get("kid", "")))
        claims = self._decode(token, key)
        return self._principal(claims), float(claims["exp"])

    async def _key(self, kid: str) -> PyJWK:
        found = self._keys.get(kid)
        if found is not None and found[1] > self._clock():
            return found[0]
        async with self._lock:  # one fetch for a burst of tokens with a new (or stale) kid
            found = self._keys.get(kid)
            if found is None or found[1] <= self._clock():
                key = await asyncio.to_thread(self._fetch, kid, found[0] if found else None)
                self._keys[kid] = (key, self._clock() + KEY_SECONDS)
        return self._keys[kid][0]

    def _fetch(self, kid: str, kept: PyJWK | None) -> PyJWK:
        """The key ``kid`` from the JWKS (refetched once when unknown; fetched anew when
        ``kept`` has been trusted for its period). Blocking."""
        if self._client is None:
            url = self.config.jwks_url or _discover(self.config.issuer)
            self._client = PyJWKClient(
                url,
                cache_keys=False,
                lifespan=KEY_SECONDS,
                timeout=_FETCH_TIMEOUT_S,
                cooldown_duration=self.config.refetch_cooldown_seconds,
            )
        try:
            if kept is not None:  # does the issuer still publish it?
                self._client.get_jwk_set(refresh=True)
            return self._client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as e:
            if kept is None:
                raise CredentialRefused(f"the issuer's keys could not be fetched: {e}") from e
            log.warning("oidc_keys_unreachable_key_kept", kid=kid, error=str(e))
            return kept
        except jwt.PyJWKClientError as e:
            raise CredentialRefused(
                f"the token's signing key (kid {kid!r}) is not among the issuer's keys: {e}"
            ) from e

    def _decode(self, token: str, key: PyJWK) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.config.audience,
                issuer=self.config.issuer,
                options={"require": ["exp", "iss", "aud"]},
                leeway=5,
            )
        except jwt.PyJWTError as e:
            for kind, message in _CHECKS:
                if isinstance(e, kind):
                    raise CredentialRefused(
                        f"{message}: {e}" if kind is jwt.MissingRequiredClaimError else message
                    ) from e
            raise CredentialRefused(f"the token is not valid: {e}") from e
        return claims

    def _principal(self, claims: dict[str, Any]) -> Principal:
        raw = claims.get(self.config.roles_claim)
        named = set(raw) if isinstance(raw, list) else ({raw} if isinstance(raw, str) else set())
        roles = [r for r in Role if r.value in named]
        subject = str(claims.get("sub", ""))
        name = str(claims.get("preferred_username") or subject or "oidc")
        if not roles:
            raise NoKnownRole(
                f"the token of {name!r} names no known role in its {self.config.roles_claim!r} claim; "
                f"roles: {[r.value for r in Role]}"
            )
        claimed = claims.get(self.config.organisation_claim)
        organisation = claimed if isinstance(claimed, str) and claimed else None
        # Without one, a role with rights for its own organisation is refused by the API's
        # header check (hub.api.auth.authenticate_header), which knows the rights.
        return Principal(name, roles[0], organisation, credential=f"jwt:{subject}")
