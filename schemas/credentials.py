"""What counts as a credential where the hub shows configuration: a password inside a URL (a
proxy's, such as an FSC outway's) and the value of a header that carries one. Both are
write-only: the API shows them masked and keeps the stored value when a change sends the mask
back (``connectors.registry``, ``subscriptions.model``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "HIDDEN",
    "is_credential_header",
    "kept_credentials",
    "kept_headers",
    "moved_secrets",
    "origin",
    "origins",
    "redact_url",
    "shown_headers",
    "trusted_cas",
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


#: Anything that names a scheme: a value a client might send a request to.
_SCHEMED = re.compile(r"^\s*[a-z][a-z0-9+.-]*://", re.IGNORECASE)
#: The user information of such a value (``user:password@``), up to its path.
_USERINFO = re.compile(r"^(\s*[a-z][a-z0-9+.-]*://)[^/?#]*@", re.IGNORECASE)


def origin(url: str) -> str | None:
    """``scheme://host:port`` of a URL (the port written out), where a credential given with it
    may be sent; ``None`` for a value that is no URL (a path, a name). Fails closed: a value
    that names a scheme but does not parse (``http://h:+443``, which an HTTP client may still
    send to) is its own origin, the whole value, so that a change to it counts as a new host."""
    if not _SCHEMED.match(url):
        return None
    unparsed = _USERINFO.sub(r"\1", url)  # named in messages: never with a password
    try:
        parts = urlsplit(url.strip())
        port, host = parts.port, parts.hostname
    except ValueError:
        return unparsed
    scheme = parts.scheme.lower()
    if not host:
        return unparsed
    host = f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets
    default = {"https": 443, "http": 80}.get(scheme)
    return f"{scheme}://{host}:{port or default}"


def origins(value: Any) -> set[str]:
    """The origins of every URL in ``value`` (strings, lists and mappings at any depth): the
    hosts a configuration sends requests to, its proxy's and token URL's included."""
    if isinstance(value, str):
        found = origin(value)
        return {found} if found else set()
    if isinstance(value, Mapping):
        return set().union(*(origins(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(origins(v) for v in value))
    return set()


def kept_credentials(sent: Mapping[str, str] | None, stored: Mapping[str, str], mask: str) -> list[str]:
    """The stored credential headers a change keeps without giving them again (lower-case
    names): all of them when it leaves the headers as they are (``sent`` is ``None``), else
    those it sends back as ``mask`` (as :func:`kept_headers` keeps them)."""
    before = {name.lower() for name in stored if is_credential_header(name)}
    if sent is None:
        return sorted(before)
    return sorted(name.lower() for name, value in sent.items() if value == mask and name.lower() in before)


#: Where a configuration names CA certificates to trust besides the system's (a subscription's
#: stored auth, a connector's ``auth``).
_CA_KEYS = frozenset({"caCertificate", "ca_certificate"})
#: Any PEM block: OpenSSL reads ``X509 CERTIFICATE`` blocks as certificates too, so every label counts.
_PEM_BLOCK = re.compile(r"-----BEGIN ([^-]*)-----(.*?)-----END \1-----", re.DOTALL)


def _certificates(pem: str) -> set[str]:
    """Each certificate of a PEM bundle, as the SHA-256 of its DER (of its text when that is no
    base64): the order of a bundle, line breaks and text around the blocks change nothing."""
    found = set()
    for _, block in _PEM_BLOCK.findall(pem):
        text = "".join(block.split())
        try:
            der = base64.b64decode(text, validate=True)
        except binascii.Error:
            der = text.encode()
        found.add(hashlib.sha256(der).hexdigest())
    return found


def trusted_cas(value: Any) -> set[str]:
    """The CA certificates ``value`` trusts besides the system's (each certificate of a PEM
    value under a ``caCertificate`` key at any depth), by the SHA-256 of each one's DER: whoever
    holds such a CA's key can answer for any host, so a new one is a new destination too. A
    value there without a PEM certificate trusts nothing (a client cannot load it)."""
    if isinstance(value, Mapping):
        found: set[str] = set()
        for key, item in value.items():
            if key in _CA_KEYS and isinstance(item, str):
                found |= _certificates(item)
            else:
                found |= trusted_cas(item)
        return found
    if isinstance(value, list):
        return set().union(*(trusted_cas(v) for v in value))
    return set()


def moved_secrets(kept: list[str], before: Any, after: Any) -> str | None:
    """Why a change may not keep the stored secrets ``kept`` (their names), or ``None``: a
    secret stays with the hosts it was given for (as a browser drops ``Authorization`` on a
    redirect to another origin), so a change that sends requests to a new origin (any URL of
    ``after`` whose origin ``before`` lacks: a sink, an API, a token URL, a proxy) or that
    trusts a new CA certificate (which can vouch for a host of its holder's choosing, for any
    name) must give them again. Every secret is bound to every host of its configuration: an
    OAuth2 client secret mints the access tokens the API or sink gets, and a proxy sees what
    passes it."""
    hosts = sorted(origins(after) - origins(before))
    cas = sorted(trusted_cas(after) - trusted_cas(before))
    if not kept or not (hosts or cas):
        return None
    them = "it" if len(kept) == 1 else "them"
    named = ", ".join(f"CA certificate sha256:{digest[:16]}…" for digest in cas)
    sends, trusts = f"sends requests to {', '.join(hosts)}", f"trusts {named}"
    if hosts and cas:
        what = f"{sends} and {trusts}, which"
    else:
        what = f"{sends}, a host" if hosts else f"{trusts}, a certificate authority"
    return (
        f"the change {what} the stored {', '.join(kept)} "
        f"{'was' if len(kept) == 1 else 'were'} not given for: send {them} again in the same change "
        f"(the hub keeps {them} write-only), or remove {them}"
    )
