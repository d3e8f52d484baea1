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

from schemas.uuids import uuid5_text

__all__ = ["NAMESPACE", "content_hash", "event_id"]

NAMESPACE: Final = uuid.UUID("6f1c6b0e-3a57-5d0c-9a43-6b2c1f0e7d11")


def content_hash(data: Any) -> str:
    """A short, stable hash of JSON-able data (keys sorted, compact)."""
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


_NS_BYTES: Final = NAMESPACE.bytes


def event_id(scope: str, objecttype: str, object_id: str, digest: str | None, generation: int) -> str:
    """The id of the event that brings ``object_id`` to content ``digest`` (None: withdrawn):
    ``str(uuid.uuid5(NAMESPACE, name))``, made without UUID objects (an import makes one per row)."""
    return uuid5_text(_NS_BYTES, f"{scope}\x1f{objecttype}\x1f{object_id}\x1f{digest or '-'}\x1f{generation}")
