"""What counts as a credential where the hub shows configuration: a password inside a URL (a
proxy's, such as an FSC outway's) and the value of a header that carries one. Both are
write-only: the API shows them masked and keeps the stored value when a change sends the mask
back (``connectors.registry``, ``subscriptions.model``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

__all__ = ["HIDDEN", "is_credential_header", "kept_headers", "redact_url", "shown_headers"]

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
