"""Subscription request/response models (CloudEvents Subscriptions API) and matching.

The request body follows the CNCF Subscriptions API: ``sink``, ``protocol``,
``protocolsettings``, ``source``, ``types``, ``config`` and ``filters``. Validation
here is static (shape, URL syntax, header names); whether the sink resolves to an
allowed network needs DNS and is done by :func:`subscriptions.ssrf.check_sink` in the API.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from subscriptions.filters import Filter, matches_all, normalize_attributes

__all__ = [
    "MAX_SINK_LENGTH",
    "RESERVED_HEADERS",
    "HttpProtocolSettings",
    "SubscriptionCreate",
    "SubscriptionStatus",
    "check_types",
    "subscription_matches",
    "validate_sink",
]

MAX_SINK_LENGTH = 2048

RESERVED_HEADERS: frozenset[str] = frozenset(
    {
        # Ours: the body format and the Standard Webhooks signature must not be
        # overridable, or a subscriber could get unsigned or mislabelled deliveries.
        "content-type",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        # Framing and routing are the HTTP client's business; overriding them breaks
        # the request or points it at another virtual host than the sink names.
        "host",
        "content-length",
        "transfer-encoding",
    }
)
_MAX_HEADERS = 32
_MAX_HEADER_VALUE = 4096
# RFC 9110 token characters.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")

SubscriptionStatus = Literal["active", "paused", "disabled"]


def check_types(value: list[str] | None) -> list[str] | None:
    """A subscription's ``types``: absent, or a list without empty strings."""
    if value is not None and any(not t for t in value):
        raise ValueError("types must not contain empty strings")
    return value


def validate_sink(value: str) -> str:
    """Check that ``value`` is an absolute http(s) URL with a host; return it unchanged.

    Raises ``ValueError`` with a message fit for a 400 response.
    """
    if len(value) > MAX_SINK_LENGTH:
        raise ValueError(f"sink is longer than {MAX_SINK_LENGTH} characters")
    if _CONTROL_OR_SPACE.search(value):
        raise ValueError("sink must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("sink must be an absolute http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("sink must name a host")
    try:
        _ = parts.port
    except ValueError as e:
        raise ValueError(f"sink has an invalid port: {e}") from e
    if parts.username is not None or parts.password is not None:
        # Credentials in the URL end up in logs and listings; headers are the place.
        raise ValueError(
            "sink must not contain credentials; use protocolsettings.headers (e.g. Authorization) instead"
        )
    return value


class HttpProtocolSettings(BaseModel):
    """``protocolsettings`` for protocol HTTP: extra headers sent with every delivery."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    headers: dict[str, str] = Field(default_factory=dict)
    # The spec allows PUT as well; deliveries are POST by contract, so only POST is
    # accepted rather than silently ignoring another method.
    method: Literal["POST"] = "POST"

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        if len(headers) > _MAX_HEADERS:
            raise ValueError(f"at most {_MAX_HEADERS} headers")
        seen: set[str] = set()
        for name, value in headers.items():
            lowered = name.lower()
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if lowered in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by Koppelhub and cannot be overridden")
            if lowered in seen:
                raise ValueError(f"header {name!r} is given twice (names are case-insensitive)")
            seen.add(lowered)
            if _FORBIDDEN_IN_VALUE.search(value):
                raise ValueError(f"header {name!r} has a line break or NUL in its value")
            if len(value) > _MAX_HEADER_VALUE:
                raise ValueError(f"header {name!r} is longer than {_MAX_HEADER_VALUE} characters")
        return headers


class SubscriptionCreate(BaseModel):
    """Body of ``POST /api/v1/subscriptions``.

    Unknown properties are rejected (a typo such as ``filter`` would otherwise silently
    subscribe to everything).
    """

    model_config = ConfigDict(extra="forbid")

    sink: str = Field(description="Absolute http(s) URL the events are POSTed to.")
    protocol: str = Field(default="HTTP", description="Delivery protocol; only HTTP for now.")
    protocolsettings: HttpProtocolSettings | None = None
    source: str | None = Field(
        default=None, min_length=1, description="Only events with exactly this source."
    )
    types: list[str] | None = Field(
        default=None, min_length=1, description="Only events whose type is one of these."
    )
    filters: list[Filter] = Field(
        default_factory=list, description="Subscriptions API filter expressions; all must hold."
    )
    config: dict[str, Any] | None = None

    @field_validator("sink")
    @classmethod
    def _check_sink(cls, value: str) -> str:
        return validate_sink(value)

    @field_validator("protocol")
    @classmethod
    def _check_protocol(cls, value: str) -> str:
        # The spec makes protocol comparison case-sensitive.
        if value != "HTTP":
            raise ValueError(f"protocol {value!r} is not supported; only 'HTTP'")
        return value

    @field_validator("types")
    @classmethod
    def _check_types(cls, value: list[str] | None) -> list[str] | None:
        return check_types(value)

    @property
    def headers(self) -> dict[str, str]:
        """The extra delivery headers (empty when no protocolsettings were given)."""
        return dict(self.protocolsettings.headers) if self.protocolsettings else {}

    def matches(self, attrs: Mapping[str, str]) -> bool:
        """Whether an event with these context attributes goes to this subscription."""
        return subscription_matches(self.source, self.types, self.filters, attrs)


def subscription_matches(
    source: str | None,
    types: Collection[str] | None,
    filters: Sequence[Filter],
    attrs: Mapping[str, str],
) -> bool:
    """Whether an event (its context attributes as strings) matches a subscription.

    ``source`` must equal the event's source when set; the event's type must be one of
    ``types`` when set (``None`` or an empty list both mean "any type": the API rejects
    an empty list, so an empty one can only come from storage defaults); and every
    filter must hold.
    """
    lowered = normalize_attributes(attrs)
    if source is not None and lowered.get("source") != source:
        return False
    if types and lowered.get("type") not in types:
        return False
    return matches_all(filters, lowered)
