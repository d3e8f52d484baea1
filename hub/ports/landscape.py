"""The landscape ports: the projector's view of the landscape tables and the read API's."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

from hub.errors import PermanentError
from hub.paging import Page

ObjectKey = tuple[str, str]
"""A landscape object's identity: ``(objecttype, id)``."""


@dataclass(frozen=True)
class Provenance:
    """Which event put an object in its current state."""

    source: str
    event_id: str
    time: datetime | None
    sequence: str | None
    archive_seq: int


@dataclass(frozen=True)
class StoredObject:
    """A landscape object as stored: its canonical state (``model_dump(mode="json")``)."""

    objecttype: str
    id: str
    state: dict[str, Any]
    provenance: Provenance

    @property
    def key(self) -> ObjectKey:
        return (self.objecttype, self.id)


@dataclass(frozen=True)
class Watermark:
    """How far one source got with one object: its latest applied ``sequence`` and ``time``.
    Kept after a delete, so an old assertion arriving late stays stale."""

    sequence: str | None
    time: datetime | None


@dataclass
class LandscapeSnapshot:
    """The stored objects and watermarks of the keys a batch touches."""

    objects: dict[ObjectKey, StoredObject] = field(default_factory=dict)
    watermarks: dict[tuple[ObjectKey, str], Watermark] = field(default_factory=dict)


@dataclass
class LandscapeWrite:
    """What one batch changes: objects to upsert and delete, and the new watermarks."""

    upserts: dict[ObjectKey, StoredObject] = field(default_factory=dict)
    deletes: set[ObjectKey] = field(default_factory=set)
    watermarks: dict[tuple[ObjectKey, str], Watermark] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes or self.watermarks)


@dataclass(frozen=True)
class Landschap:
    """One organisation's landscape: its gebruik, each with its applicatie (None while that
    reference dangles), and the koppelingen it runs."""

    organisatie: StoredObject | None
    gebruik: list[tuple[StoredObject, StoredObject | None]]
    koppelingen: list[StoredObject]


class LandscapeUnitOfWork(Protocol):
    """The landscape tables inside one projector transaction."""

    async def load(self, keys: Collection[ObjectKey], sources: Collection[str]) -> LandscapeSnapshot:
        """The stored objects among ``keys`` and their watermarks for ``sources``."""
        ...

    async def write(self, changes: LandscapeWrite) -> None:
        """Apply upserts, deletes and watermarks."""
        ...


class LandscapeReader(Protocol):
    """What the read API asks of the landscape (see :data:`hub.services.landscape.LIST_FILTERS`)."""

    async def get(self, objecttype: str, object_id: str) -> StoredObject | None: ...

    async def list(
        self, objecttype: str, filters: Mapping[str, str], *, after: str | None, limit: int
    ) -> Page[StoredObject]:
        """Objects ordered by id, after the id ``after``; ``next_cursor`` is the last id when
        more follow."""
        ...

    async def landschap(self, organisatie: str) -> Landschap: ...

    async def owners(self, keys: Collection[ObjectKey]) -> dict[ObjectKey, str | None]:
        """The owning organisation of each stored object among ``keys`` (see
        :func:`schemas.landscape.privacy.owner_of`); objects not stored are left out."""
        ...

    async def objects(self, keys: Collection[ObjectKey]) -> dict[ObjectKey, StoredObject]:
        """The stored objects among ``keys``, by key; objects not stored are left out."""
        ...


COLLECTIONS: Final = {
    "organisatie": "organisaties",
    "applicatie": "applicaties",
    "gebruik": "gebruik",
    "koppeling": "koppelingen",
    "referentiecomponent": "referentiecomponenten",
    "standaard": "standaarden",
}


LIST_FILTERS: Final[dict[str, dict[str, tuple[str, Any]]]] = {
    "organisatie": {"type": ("eq", "type")},
    "applicatie": {"aanbieder": ("eq", "aanbieder"), "referentiecomponent": ("has", "referentiecomponenten")},
    "gebruik": {"afnemer": ("eq", "afnemer"), "applicatie": ("eq", "applicatie"), "status": ("eq", "status")},
    "koppeling": {
        "applicatie": ("either", ("applicatieA", "applicatieB")),
        "organisatie": ("eq", "organisatie"),
    },
    "referentiecomponent": {},
    "standaard": {},
}


class UnknownFilter(PermanentError):
    """List filters the read API does not offer for this object type."""

    def __init__(self, objecttype: str, names: Iterable[str]):
        self.names = sorted(names)
        offered = ", ".join(LIST_FILTERS[objecttype]) or "none"
        wrong = ", ".join(map(repr, self.names))
        super().__init__(f"{COLLECTIONS[objecttype]} cannot be filtered on {wrong}; filters: {offered}")


def check_filters(objecttype: str, filters: Iterable[str]) -> None:
    """Raise :class:`UnknownFilter` naming every filter ``objecttype`` does not offer."""
    unknown = set(filters) - LIST_FILTERS[objecttype].keys()
    if unknown:
        raise UnknownFilter(objecttype, unknown)
