"""Deterministic event ids and content fingerprints.

An event id is uuid5 over the connector instance (scope), the object type and id, the
content hash and the object's generation (how many changes of it this scope published
before). A re-run after a crash publishes the same ids, so the projector's dedupe makes it
harmless; the generation keeps a change back to an earlier content (A → B → A) from
reusing the id of the first A, which the dedupe would otherwise swallow.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any, Final

__all__ = ["NAMESPACE", "content_hash", "event_id"]

NAMESPACE: Final = uuid.UUID("6f1c6b0e-3a57-5d0c-9a43-6b2c1f0e7d11")


def content_hash(data: Any) -> str:
    """A short, stable hash of JSON-able data (keys sorted, compact)."""
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


_NS_BYTES: Final = NAMESPACE.bytes
#: A hex digit with its two top bits set to the RFC 4122 variant (10xx).
_VARIANT: Final = {c: f"{(int(c, 16) & 0x3) | 0x8:x}" for c in "0123456789abcdef"}


def event_id(scope: str, objecttype: str, object_id: str, digest: str | None, generation: int) -> str:
    """The id of the event that brings ``object_id`` to content ``digest`` (None: withdrawn).

    Exactly ``str(uuid.uuid5(NAMESPACE, name))``, without building UUID objects (an import
    makes one per row)."""
    name = f"{scope}\x1f{objecttype}\x1f{object_id}\x1f{digest or '-'}\x1f{generation}"
    h = hashlib.sha1(_NS_BYTES + name.encode(), usedforsecurity=False).hexdigest()
    # Version 5 in the 13th hex digit, the RFC 4122 variant in the top bits of the 17th.
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"
