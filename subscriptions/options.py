"""Per-subscription delivery options: retry schedule, flow control, content mode, sink auth.

Shared by the create and the update (``PATCH``) bodies. Names are camelCase in JSON like the
rest of the API. Secrets given here (an OAuth2 client secret, a client certificate's private
key, a proxy password) are write-only: the API echoes only that they are set.
"""

from __future__ import annotations

import math
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.credentials import HIDDEN, kept_credentials, moved_secrets, redact_url
from subscriptions.filters import Filter
from subscriptions.model import HttpProtocolSettings, SubscriptionCreate, check_types, validate_sink

__all__ = [
    "ClientCertificate",
    "ContentMode",
    "DeliveryOptions",
    "NewSubscription",
    "OAuth2ClientCredentials",
    "Ordering",
    "SinkAuth",
    "SubscriptionUpdate",
    "kept_auth",
    "moved_sink_secrets",
    "public_auth",
]

Ordering = Literal["key", "none"]
ContentMode = Literal["structured", "binary"]
_MAX_SCHEDULE = 30
_MAX_DELAY = 7 * 86_400.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class OAuth2ClientCredentials(_Strict):
    """OAuth2 client credentials grant: the token is fetched, cached and refreshed."""

    token_url: str = Field(alias="tokenUrl", description="Token endpoint (SSRF-guarded like the sink).")
    client_id: str = Field(alias="clientId", min_length=1, max_length=512)
    client_secret: str = Field(alias="clientSecret", min_length=1, max_length=4096)
    scope: str | None = Field(default=None, max_length=2048)
    audience: str | None = Field(default=None, max_length=2048)

    @field_validator("token_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _checked_url(value)


def _checked_url(value: str) -> str:
    try:
        return validate_sink(value)
    except ValueError as e:
        raise ValueError(str(e).replace("sink", "URL")) from e


class ClientCertificate(_Strict):
    """A client certificate for mutual TLS, PEM encoded."""

    certificate: str = Field(min_length=1, max_length=65_536, description="PEM certificate (chain).")
    private_key: str = Field(alias="privateKey", min_length=1, max_length=65_536, description="PEM key.")

    @field_validator("certificate")
    @classmethod
    def _pem_certificate(cls, value: str) -> str:
        if "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError("certificate must be PEM ('-----BEGIN CERTIFICATE-----')")
        return value

    @field_validator("private_key")
    @classmethod
    def _pem_key(cls, value: str) -> str:
        if "PRIVATE KEY-----" not in value:
            raise ValueError("privateKey must be a PEM private key")
        return value


class SinkAuth(_Strict):
    """How the dispatcher authenticates to the sink and which way it goes out."""

    oauth2: OAuth2ClientCredentials | None = None
    client_certificate: ClientCertificate | None = Field(default=None, alias="clientCertificate")
    ca_certificate: str | None = Field(
        default=None,
        alias="caCertificate",
        max_length=65_536,
        description="PEM CA certificate(s) to trust for the sink besides the system's (a private CA).",
    )
    proxy: str | None = Field(default=None, description="HTTP(S) proxy, e.g. an FSC outway.")

    @field_validator("ca_certificate")
    @classmethod
    def _pem_ca(cls, value: str | None) -> str | None:
        if value is not None and "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError("caCertificate must be PEM ('-----BEGIN CERTIFICATE-----')")
        return value

    @field_validator("proxy")
    @classmethod
    def _check_proxy(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("proxy must be an absolute http:// or https:// URL")
        return value


def public_auth(stored: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of stored sink auth: never a secret, only that it is set."""
    out: dict[str, Any] = {}
    oauth2 = stored.get("oauth2")
    if oauth2:
        out["oauth2"] = {
            "tokenUrl": oauth2.get("token_url"),
            "clientId": oauth2.get("client_id"),
            "scope": oauth2.get("scope"),
            "audience": oauth2.get("audience"),
            "clientSecret": HIDDEN,
        }
    if stored.get("client_certificate"):
        out["clientCertificate"] = {"configured": True}
    if stored.get("ca_certificate"):
        out["caCertificate"] = stored["ca_certificate"]  # public by nature
    if stored.get("proxy"):
        out["proxy"] = redact_url(stored["proxy"])
    return out


def kept_auth(sent: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """The sink auth a change stores (both in stored form): a secret sent back as
    :func:`public_auth` shows it (the client secret as ``***``, the proxy with its password
    masked) keeps the stored value, so reading a subscription and sending it back changes
    nothing."""
    kept = dict(sent)
    oauth2, before = sent.get("oauth2"), stored.get("oauth2") or {}
    if oauth2 and oauth2.get("client_secret") == HIDDEN and before.get("client_secret"):
        kept["oauth2"] = {**oauth2, "client_secret": before["client_secret"]}
    proxy, proxied = sent.get("proxy"), stored.get("proxy")
    if proxy and proxied and proxy != proxied and proxy == redact_url(proxied):
        kept["proxy"] = proxied
    return kept


def moved_sink_secrets(
    *,
    stored: Any,
    sink: str,
    sent_headers: dict[str, str] | None,
    sent_auth: dict[str, Any] | None,
) -> str | None:
    """Why a change may not keep a subscription's stored secrets, or ``None``: credential
    headers and the OAuth2 client secret kept without being given again (headers not sent or
    sent back as ``***``; auth not sent or its client secret sent back so) may not follow the
    sink, the token URL or the proxy to another host, nor a new ``caCertificate``
    (``schemas.credentials.moved_secrets``).
    ``stored`` is the stored subscription (``sink``, ``headers``, ``auth``); ``sent_*`` are
    the change's own, ``None`` when it leaves them as they are."""
    stored_auth: dict[str, Any] = dict(stored.auth)
    kept = [
        f"protocolsettings.headers.{name}" for name in kept_credentials(sent_headers, stored.headers, HIDDEN)
    ]
    secret = (stored_auth.get("oauth2") or {}).get("client_secret")
    sent_secret = ((sent_auth or {}).get("oauth2") or {}).get("client_secret")
    if secret and (sent_auth is None or sent_secret == HIDDEN):
        kept.append("auth.oauth2.clientSecret")
    after_auth = stored_auth if sent_auth is None else sent_auth
    return moved_secrets(kept, _destinations(stored.sink, stored_auth), _destinations(sink, after_auth))


def _destinations(sink: str, auth: dict[str, Any]) -> dict[str, Any]:
    """Where a subscription's requests go (its sink, its token URL and its proxy) and the CA it
    trusts for them besides the system's."""
    token_url = (auth.get("oauth2") or {}).get("token_url")
    return {"urls": [sink, token_url, auth.get("proxy")], "ca_certificate": auth.get("ca_certificate")}


class DeliveryOptions(_Strict):
    """The per-subscription delivery options; ``None`` means "the global setting"."""

    retry_schedule: list[float] | None = Field(
        default=None,
        alias="retrySchedule",
        description="Seconds between attempts; its length is the number of retries.",
    )
    ordering: Ordering = Field(
        default="key", description="'key': in order per partition key; 'none': in parallel."
    )
    max_concurrency: int | None = Field(default=None, alias="maxConcurrency", ge=1, le=1000)
    max_rate: float | None = Field(default=None, alias="maxRate", gt=0, le=100_000, description="Events/s.")
    content_mode: ContentMode = Field(default="structured", alias="contentMode")
    auth: SinkAuth | None = None

    @field_validator("retry_schedule")
    @classmethod
    def _check_schedule(cls, value: list[float] | None) -> list[float] | None:
        if value is None:
            return None
        if not 1 <= len(value) <= _MAX_SCHEDULE:
            raise ValueError(f"give between 1 and {_MAX_SCHEDULE} delays")
        for position, delay in enumerate(value, start=1):
            if not math.isfinite(delay) or not 0 <= delay <= _MAX_DELAY:
                raise ValueError(f"delay #{position} must be between 0 and {_MAX_DELAY:.0f} seconds")
        return value


class NewSubscription(SubscriptionCreate, DeliveryOptions):
    """Body of ``POST /api/v1/subscriptions``: the Subscriptions API fields plus delivery options.

    ``validate=false`` creates the subscription even when the handshake cannot reach the sink.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    validate_sink_: bool = Field(default=True, alias="validate")
    organisatie: str | None = Field(
        default=None, min_length=1, description="Owning organisation (default: the caller's; none: hub-wide)."
    )


class SubscriptionUpdate(DeliveryOptions):
    """Body of ``PATCH /api/v1/subscriptions/{id}``: only the fields given change.

    ``enabled: false`` pauses (deliveries stay queued), ``enabled: true`` resumes a paused or
    disabled subscription. ``null`` for an option returns it to the global setting.
    """

    sink: str | None = None
    source: str | None = Field(default=None, min_length=1)
    types: list[str] | None = Field(default=None, min_length=1)
    filters: list[Filter] | None = None
    protocolsettings: HttpProtocolSettings | None = None
    config: dict[str, Any] | None = None
    enabled: bool | None = None
    validate_sink_: bool = Field(default=True, alias="validate")

    @field_validator("sink")
    @classmethod
    def _check_sink(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("sink cannot be removed")
        return validate_sink(value)

    @field_validator("enabled")
    @classmethod
    def _check_enabled(cls, value: bool | None) -> bool | None:
        if value is None:
            raise ValueError("enabled must be true or false")
        return value

    @field_validator("types")
    @classmethod
    def _check_types(cls, value: list[str] | None) -> list[str] | None:
        return check_types(value)

    def given(self) -> set[str]:
        """The fields the request set (``null`` included), by field name."""
        return set(self.model_fields_set) - {"validate_sink_"}
