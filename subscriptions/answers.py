"""Reading a sink's answer: the disposition of a status or an exception, and ``Retry-After``."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

__all__ = ["BlockedAddressError", "Disposition", "classify_exception", "classify_status", "parse_retry_after"]


class Disposition(enum.StrEnum):
    """What the dispatcher should do after an attempt."""

    DELIVERED = "delivered"  # any 2xx
    GONE = "gone"  # 410: the subscriber asks us to stop; disable the subscription
    RETRY = "retry"  # anything else: schedule the next attempt
    REFUSED = "refused"  # SSRF guard or an unusable URL: nothing was sent
    PERMANENT = "permanent"  # the target refused for good (a 4xx retrying cannot fix): dead at once


class BlockedAddressError(OSError):
    """Raised by the guarded resolver when every address of a host is blocked.

    An ``OSError`` so aiohttp reports it like any other resolution failure
    (``ClientConnectorDNSError``) and the sender can tell it apart by its cause.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value (delay-seconds or HTTP-date), else ``None``.

    A date in the past gives 0; an unparsable value is ignored rather than trusted.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def classify_status(status: int) -> tuple[Disposition, str | None]:
    if 200 <= status < 300:
        return Disposition.DELIVERED, None
    if status == 410:
        return Disposition.GONE, "http_410"
    return Disposition.RETRY, f"http_{status}"


def classify_exception(exc: BaseException) -> tuple[Disposition, str]:
    """Map an aiohttp/OS exception to a disposition and an error class."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        if isinstance(exc.os_error, BlockedAddressError):
            return Disposition.REFUSED, "ssrf_refused"
        return Disposition.RETRY, "dns_error"
    if isinstance(exc, TimeoutError):  # includes aiohttp's Server/ConnectionTimeoutError
        return Disposition.RETRY, "timeout"
    if isinstance(exc, aiohttp.ClientSSLError):
        return Disposition.RETRY, "tls_error"
    if isinstance(exc, aiohttp.InvalidURL):
        return Disposition.REFUSED, "invalid_url"
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return Disposition.RETRY, "protocol_error"
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return Disposition.RETRY, "connection_error"
    if isinstance(exc, ValueError):  # e.g. a header value aiohttp will not send
        return Disposition.REFUSED, "invalid_request"
    return Disposition.RETRY, "client_error"
