"""Standard Webhooks 1.0 signing.

A delivery carries ``webhook-id`` (stable across retries), ``webhook-timestamp`` (Unix
seconds) and ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``,
several space-separated during a secret rotation. Secrets are ``whsec_`` + base64 of
random bytes; the HMAC key is the decoded bytes, not the string.

Implemented with hmac/hashlib directly so the dispatcher's hot path has no dependency;
the tests prove the output against the reference verifier (``standardwebhooks``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Sequence
from functools import lru_cache

__all__ = [
    "SECRET_PREFIX",
    "generate_secret",
    "sign",
    "sign_many",
    "webhook_headers",
]

SECRET_PREFIX = "whsec_"  # noqa: S105  (a format prefix, not a secret)
_SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64.


def generate_secret() -> str:
    """A new signing secret: ``whsec_`` + base64 of 32 bytes from ``secrets``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


@lru_cache(maxsize=1024)
def _key(secret: str) -> bytes:
    """The HMAC key of a secret, decoded once per secret (it signs every delivery of its subscription)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    # Receivers accept unpadded base64, so we do too.
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error as e:
        raise ValueError("webhook secret is not valid base64 after the 'whsec_' prefix") from e
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one secret: ``v1,<base64 HMAC-SHA256>``.

    The signed content is ``f"{msg_id}.{timestamp}.".encode() + body``; ``body`` must be
    the exact bytes sent.
    """
    message = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.digest(_key(secret), message, "sha256")
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign_many(secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Space-separated signatures, one per secret (newest first by convention).

    During a secret rotation the receiver may know either secret; it accepts the
    delivery when any signature verifies.
    """
    if isinstance(secrets_, str):
        # A bare string is a Sequence[str] of characters; signing with each character
        # would be a silent, confusing bug.
        raise TypeError("sign_many takes a sequence of secrets, not one secret")
    if not secrets_:
        raise ValueError("at least one secret is needed to sign")
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets_)


def webhook_headers(secret: str | Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt.

    ``secret`` is one secret or, during a rotation, several (every one signs).
    """
    secret_list = [secret] if isinstance(secret, str) else list(secret)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_many(secret_list, msg_id, timestamp, body),
    }
