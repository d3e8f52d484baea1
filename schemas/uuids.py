"""Name-based UUIDs (version 5) as text, without building :class:`uuid.UUID` objects.

One owner for the hot paths that make one per item: a connector's event id per row
(``connectors/ids.py``), the ``webhook-id`` per delivery attempt (``subscriptions/lifecycle.py``)
and a derived event's id per projected event (``hub/services/landscape.py``). ``str(uuid.uuid5(...))``
builds two UUID objects and formats one; this hashes and formats once (tests/unit/test_uuids.py
holds it to the standard library's result).
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["uuid5_text"]

#: A hex digit with its two top bits set to the RFC 4122 variant (10xx).
_VARIANT: Final = {c: f"{(int(c, 16) & 0x3) | 0x8:x}" for c in "0123456789abcdef"}


def uuid5_text(namespace: bytes, name: str) -> str:
    """Exactly ``str(uuid.uuid5(uuid.UUID(bytes=namespace), name))``: SHA-1 of the namespace's
    16 bytes and the name's UTF-8, version 5 in the 13th hex digit, the variant in the 17th."""
    h = hashlib.sha1(namespace + name.encode(), usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"
