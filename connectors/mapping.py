"""Records to publishable objects, as one pure function a worker process can run.

The runner (``hub.services.sync``) fingerprints records and looks them up itself; the records
that need mapping go through :func:`map_records`, in this process or, for large imports, in a
``ProcessPoolExecutor`` worker (the second core). Everything crossing the process boundary is
plain tuples and bytes: a record's objects as ``(objecttype, id, digest, data as JSON)`` or its
problems. The JSON is exactly what the event's Kafka value would be
(:meth:`schemas.CloudEvent.data_bytes` of :func:`connectors.events.vastgelegd_event`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from connectors.base import Change, Record, RecordRejected
from connectors.ids import content_hash
from schemas.jsonbytes import dumps_compact
from schemas.landscape.privacy import OWNER_FIELDS

__all__ = ["OWN_ONLY", "MappedObject", "Mapper", "Outcome", "map_records"]

#: The object types an import or connector records only for its own organisation: their owner
#: field (:data:`OWNER_FIELDS`) must name it, and a stored one of another organisation is not
#: touched (:mod:`hub.services.ownership`). Organisaties are not among them: an import names
#: its suppliers; GEMMA objects have no owner.
OWN_ONLY: Final = frozenset({"gebruik", "applicatie", "koppeling"})

Mapper = Callable[[Record], list[Change]]
#: ``(objecttype, object id, content digest, data as compact JSON bytes)``.
MappedObject = tuple[str, str, str, bytes]
#: Per record: ``(objects, None)`` when it maps, ``([], problems)`` when it is rejected.
Outcome = tuple[list[MappedObject], list[tuple[str, str]] | None]


def map_records(
    mapper: Mapper,
    items: Sequence[tuple[Record, tuple[str, str, str] | None]],
    organisatie: str | None = None,
) -> list[Outcome]:
    """Map each ``(record, fingerprint)``: one outcome per item, in order. With ``organisatie``
    (the import's or connector's), a record that would make an object of :data:`OWN_ONLY` owned
    by another organisation is rejected, as a publish of it would be refused.

    An object that is the record's own fingerprinted object keeps the fingerprint digest and is
    serialised by its model's own serialiser straight to JSON bytes (the same bytes as
    ``dumps_compact(obj.model_dump(mode="json"))``, a unit test holds them equal, at a third of the
    cost: an import does this per row); any other gets :func:`connectors.ids.content_hash` of
    its data (as the runner always did)."""
    out: list[Outcome] = []
    for record, fp in items:
        try:
            changes = mapper(record)
        except RecordRejected as e:
            out.append(([], list(e.problems)))
            continue
        if organisatie is not None and (claimed := _claimed(changes, organisatie)):
            out.append(([], claimed))
            continue
        objects: list[MappedObject] = []
        for change in changes:
            obj = change.object
            if fp is not None and obj.id == fp[1] and obj.objecttype == fp[0]:
                objects.append((obj.objecttype, obj.id, fp[2], obj.__pydantic_serializer__.to_json(obj)))
                continue
            data = obj.model_dump(mode="json")
            objects.append((obj.objecttype, obj.id, content_hash(data), dumps_compact(data)))
        out.append((objects, None))
    return out


def _claimed(changes: list[Change], organisatie: str) -> list[tuple[str, str]]:
    """The problems of objects among ``changes`` that another organisation would own."""
    problems = []
    for change in changes:
        obj = change.object
        if obj.objecttype not in OWN_ONLY:
            continue
        field = OWNER_FIELDS[obj.objecttype]
        owner = getattr(obj, field, None)
        if isinstance(owner, str) and owner and owner != organisatie:
            problems.append(
                (field, f"names {owner!r}: {obj.objecttype} {obj.id!r} would belong to another "
                 f"organisation; an import or connector of {organisatie!r} records only its own")
            )  # fmt: skip
    return problems
