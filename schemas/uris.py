"""Why a CloudEvent attribute is not an RFC 3986 URI(-reference), said as a publisher reads it.

``source`` must be a URI reference and ``dataschema`` an absolute URI (CloudEvents 1.0). A
publisher sends the same few ``source`` values over and over, and this check (three regular
expressions) was a quarter of an event's validation, so :func:`known_uri_problem` keeps the
answers (:mod:`schemas.envelope` asks it for values of an attribute's length only).
"""

from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["find_uri_problem", "known_uri_problem", "show"]

_URI_RE = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_URI_HEAD_RE = re.compile(r"[/?#]")
#: At most this many checked URIs are kept (each at most 512 characters: well under 4 MB).
_URI_CACHE_SIZE = 4096


def show(value: Any) -> str:
    """``value`` quoted for an error message, cut at 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def find_uri_problem(value: str, absolute: bool) -> str | None:
    """Why ``value`` is not a URI reference (an absolute URI when ``absolute``), or None."""
    if not _URI_RE.fullmatch(value):
        return (
            f"{show(value)} is not a URI reference (RFC 3986): spaces, control and "
            "non-ASCII characters must be percent-encoded"
        )
    if value.count("#") > 1:
        return f"{show(value)} is not a URI reference: it has more than one '#'"
    head = _URI_HEAD_RE.split(value, maxsplit=1)[0]
    if ":" in head:
        if not _SCHEME_RE.fullmatch(head.split(":", 1)[0]):
            return (
                f"{show(value)} is not a URI reference: the part before ':' is not a "
                "scheme (a relative reference cannot have ':' in its first segment)"
            )
    elif absolute:
        return f"{show(value)} is not an absolute URI: it needs a scheme, e.g. 'https:'"
    return None


known_uri_problem = functools.lru_cache(maxsize=_URI_CACHE_SIZE)(find_uri_problem)
