"""What counts as a credential where the hub shows configuration: a password inside a URL (a
proxy's, such as an FSC outway's) and the value of a header that carries one. Both are
write-only: the API shows them masked and keeps the stored value when a change sends the mask
back (``connectors.registry``, ``subscriptions.model``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "HIDDEN",
    "is_credential_header",
    "kept_headers",
    "moved_secrets",
    "origin",
    "origins",
    "redact_url",
    "shown_headers",
]

#: How a subscription's secrets are shown: a URL's password, a credential header, the OAuth2
#: client secret (connectors show theirs as ``connectors.registry.MASK``).
HIDDEN = "***"

#: Broad on purpose: a header wrongly taken for a credential is only write-only, a credential
#: missed is shown to everyone who may read the configuration.
_CREDENTIAL_HEADER = re.compile(
    r"auth|cookie|token|secret|passw|pwd|key|credential|signature|session", re.IGNORECASE
)


def is_credential_header(name: str) -> bool:
    """Whether a header of this name carries a credential (``Authorization``, ``Cookie``,
    ``X-Api-Key``, ``X-Auth-Token``, ``Ocp-Apim-Subscription-Key``, ``X-Functions-Key``, …)."""
    return _CREDENTIAL_HEADER.search(name) is not None


def shown_headers(headers: Mapping[str, str], mask: str) -> dict[str, str]:
    """Headers as the API shows them: a credential's value as ``mask``."""
    return {name: mask if is_credential_header(name) else value for name, value in headers.items()}


def kept_headers(sent: Mapping[str, str], stored: Mapping[str, str], mask: str) -> dict[str, str]:
    """The headers a change sets: ``sent``, where a credential sent back as shown (``mask``)
    keeps its stored value (names compare case-insensitively)."""
    before = {name.lower(): value for name, value in stored.items()}
    return {
        name: before[name.lower()]
        if value == mask and is_credential_header(name) and name.lower() in before
        else value
        for name, value in sent.items()
    }


def redact_url(url: str) -> str:
    """``url`` with its password, if it has one, shown as ``***``: for listings and logs.
    ``ValueError`` when it names a port that is not one."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets
    netloc = f"{parts.username}:{HIDDEN}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def origin(url: str) -> str | None:
    """``scheme://host:port`` of an http(s) URL (the port written out), ``None`` for anything
    else: where a credential given with that URL may be sent."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{scheme}://{parts.hostname.lower()}:{port or (443 if scheme == 'https' else 80)}"


#: Config keys whose URLs are not where the secrets beside them go: a proxy's URL carries its
#: own password, and an OAuth2 token URL is where the client secret goes (checked on its own).
_OWN_DESTINATION = frozenset({"proxy", "oauth2"})


def origins(value: Any, skip: frozenset[str] = _OWN_DESTINATION) -> set[str]:
    """The origins of every http(s) URL in ``value`` (strings, lists and mappings at any depth),
    leaving out the values of the keys in ``skip``."""
    if isinstance(value, str):
        found = origin(value)
        return {found} if found else set()
    if isinstance(value, Mapping):
        return set().union(*(origins(v, skip) for k, v in value.items() if k not in skip))
    if isinstance(value, list):
        return set().union(*(origins(v, skip) for v in value))
    return set()


def moved_secrets(kept: list[str], before: Any, after: Any) -> str | None:
    """Why a change may not keep the stored secrets ``kept`` (their names), or ``None``: a
    secret stays with the hosts it was given for (as a browser drops ``Authorization`` on a
    redirect to another origin), so a change that points them at a new origin (any http(s) URL
    of ``after`` whose origin ``before`` lacks) must give them again."""
    new = sorted(origins(after) - origins(before))
    if not kept or not new:
        return None
    them = "it" if len(kept) == 1 else "them"
    return (
        f"the change sends requests to {', '.join(new)}, a host the stored {', '.join(kept)} "
        f"{'was' if len(kept) == 1 else 'were'} not given for: send {them} again in the same change "
        f"(the hub keeps {them} write-only), or remove {them}"
    )
