"""The tables the in-memory connector, import and fingerprint stores share (as their PostgreSQL
adapters share ``connectors``, ``imports``, ``import_errors`` and ``connector_fingerprints``)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.ports.connectors import Key, RowError


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Held:
    """A record with the lease the store keeps beside it (not part of the record)."""

    record: Any
    lease_until: datetime | None = None


@dataclass
class Print:
    hash: str | None
    generation: int
    seen: uuid.UUID | None
    data: dict[str, Any] | None = None  # pass-through items: the fields published last


@dataclass
class InMemoryConnectorTables:
    clock: Callable[[], datetime] = _now
    connectors: dict[uuid.UUID, Held] = field(default_factory=dict)
    imports: dict[uuid.UUID, Held] = field(default_factory=dict)
    import_errors: dict[uuid.UUID, list[RowError]] = field(default_factory=dict)
    fingerprints: dict[tuple[str, str], dict[Key, Print]] = field(default_factory=dict)


def stored_copy(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A stored copy, as a JSON column would hold it: later changes to the caller's dict or to
    what ``known`` returned do not reach the store."""
    return None if data is None else copy.deepcopy(dict(data))
