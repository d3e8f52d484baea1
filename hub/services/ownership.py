"""Imports and connectors touch only their own organisation's objects.

An import (or connector) runs for one organisation. A row whose object the hub already holds
for another organisation (the ``afnemer`` of a gebruik, the ``aanbieder`` of an applicatie,
the ``organisatie`` of a koppeling: :func:`schemas.landscape.privacy.owner_of`) is a row
error, so a typo in the organisatie of an import cannot move another municipality's data.
GEMMA objects have no owner; who may import them at all is the matrix's question
(:func:`hub.api.ownership.check_import_right`). An import names other organisaties (its
suppliers): it may make one the hub does not hold and keep up what it made, but an organisatie
another source stated since (its own administrators' publish, another import or connector) is
left as that source states it: not published, not withdrawn, named in the run's notes
(:class:`OthersKept`, :func:`kept_from_withdrawal`). An organisatie row may not give the ``oin``
or ``kvkNummer`` another organisatie has (:func:`taken_numbers`), as a publish may not: a number
names the sources of one organisation (:mod:`hub.services.source_owners`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import orjson

from connectors.mapping import OWN_ONLY, MappedObject
from hub.ports.landscape import ObjectKey, StoredObject
from hub.services.source_owners import SourceIndex, number_sources
from schemas.bindings import KafkaRecord
from schemas.landscape.privacy import owner_of

__all__ = [
    "CHECKED_TYPES",
    "NAMED_OF_OTHERS",
    "Numbers",
    "OthersKept",
    "Owners",
    "Stored",
    "first_named",
    "foreign_objects",
    "foreign_problem",
    "kept_from_withdrawal",
    "organisatie_header",
    "stamped",
    "taken_numbers",
]

#: ``LandscapeReader.owners``: the stored owner of each key.
Owners = Callable[[Collection[ObjectKey]], Awaitable[dict[ObjectKey, str | None]]]
#: ``LandscapeReader.objects``: the stored objects among the keys.
Stored = Callable[[Collection[ObjectKey]], Awaitable[dict[ObjectKey, StoredObject]]]

CHECKED_TYPES: Final = OWN_ONLY
#: The organisaties' numbers as owned sources (``TokenService.source_owners`` or a fresh read).
Numbers = Callable[[], Awaitable[SourceIndex]]


async def foreign_objects(
    owners: Owners | None, organisatie: str, keys: Iterable[ObjectKey]
) -> dict[ObjectKey, str]:
    """Among ``keys``, the stored objects another organisation owns, with that owner."""
    checked = {k for k in keys if k[0] in CHECKED_TYPES}
    if owners is None or not checked:
        return {}
    found = await owners(checked)
    return {k: owner for k, owner in found.items() if owner is not None and owner != organisatie}


def foreign_problem(key: ObjectKey, owner: str, organisatie: str) -> tuple[str, str]:
    """The row error (column, message) for a row that touches another organisation's object."""
    return (
        "id",
        f"{key[0]} {key[1]!r} belongs to organisatie {owner!r}, not to {organisatie!r}: an import "
        "changes only its own organisation's objects (check the organisatie of the import)",
    )


#: The object types a run names of other organisations: its suppliers and their applicaties.
#: A gebruik or koppeling of a run is always its own organisation's (:data:`CHECKED_TYPES`).
NAMED_OF_OTHERS: Final = frozenset({"organisatie", "applicatie"})


def _theirs(stored: StoredObject, organisatie: str, source: str) -> bool:
    """Whether ``stored`` is another organisation's as another source last stated it: then a
    run of ``source`` for ``organisatie`` leaves it as it is. The one rule of both
    :class:`OthersKept` and :func:`kept_from_withdrawal`."""
    owner = owner_of(stored.objecttype, stored.state)
    return owner is not None and owner != organisatie and stored.provenance.source != source


@dataclass
class OthersKept:
    """The organisaties other than its own that a run named but leaves as another source states
    them (the organisation's own publish, another import or connector): not published, not
    withdrawn, named in the run's note. An import names its suppliers, and a supplier that
    states itself is its own; what the import made and nobody restated since, it keeps up.
    Not publishing them at all (rather than a row that restates one as stored) also keeps an
    import from putting back a state the projector has not yet replaced with the supplier's own."""

    #: Object id → the source that states it, in the order first found.
    named: dict[str, str] = field(default_factory=dict)

    async def find(
        self, stored: Stored | None, organisatie: str, source: str, mapped: Iterable[MappedObject]
    ) -> set[ObjectKey]:
        """Among ``mapped``, the organisaties another source states (one read for the batch)."""
        keys = {("organisatie", m[1]) for m in mapped if m[0] == "organisatie" and m[1] != organisatie}
        if stored is None or not keys:
            return set()
        theirs = {k: held for k, held in (await stored(keys)).items() if _theirs(held, organisatie, source)}
        for (_, object_id), held in theirs.items():
            self.named.setdefault(object_id, held.provenance.source)
        return set(theirs)

    def note(self) -> str | None:
        """The run report's note (the first five named), None when there is none."""
        if not self.named:
            return None
        named = first_named([f"{i!r} ({src})" for i, src in self.named.items()])
        return (
            f"{len(self.named)} organisatie(s) the rows name are recorded by another source and were "
            f"left as it states them: {named}; a run changes only the organisaties it made"
        )


def first_named(names: Sequence[str], shown: int = 5) -> str:
    """A run note's list: the first ``shown`` of ``names``, and how many more there are."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


async def kept_from_withdrawal(
    stored: Stored | None, organisatie: str, source: str, keys: Collection[ObjectKey]
) -> set[ObjectKey]:
    """Among ``keys`` a full run of ``source`` no longer read, the objects it may not withdraw:
    another organisation's, as another source stated them since (a supplier the import made,
    since recorded by the supplier itself). Only :data:`NAMED_OF_OTHERS` are looked up."""
    named = [k for k in keys if k[0] in NAMED_OF_OTHERS]
    if stored is None or not named:
        return set()
    found = await stored(named)
    return {key for key, held in found.items() if _theirs(held, organisatie, source)}


async def taken_numbers(
    numbers: Numbers | None, mapped: Iterable[MappedObject]
) -> dict[ObjectKey, list[tuple[str, str]]]:
    """Among ``mapped``, the organisaties that give an ``oin`` or ``kvkNummer`` another
    organisatie has, with their row errors (column, message). The numbers are read only when an
    organisatie with one is among them."""
    organisaties = [(key, orjson.loads(data)) for kind, key, _, data in mapped if kind == "organisatie"]
    given = [(object_id, fields) for object_id, fields in organisaties if number_sources(fields)]
    if numbers is None or not given:
        return {}
    index = await numbers()
    taken: dict[ObjectKey, list[tuple[str, str]]] = {}
    for object_id, fields in given:
        for column, source, label, holder in index.taken_numbers(object_id, fields):
            number = source.rsplit(":", 1)[-1]
            message = (
                f"{label} {number} is organisatie {holder.organisatie!r}'s: a number names one "
                "organisation (correct the row, or that organisatie first)"
            )
            taken.setdefault(("organisatie", object_id), []).append((column, message))
    return taken


def stamped(record: KafkaRecord, organisatie: str) -> KafkaRecord:
    """An import's or connector's event in the Kafka binding, with the extension attribute
    ``organisatie`` of the organisation it runs for (the recipients rule reads it)."""
    record.headers.append(organisatie_header(organisatie))
    return record


def organisatie_header(organisatie: str) -> tuple[str, bytes]:
    """The Kafka header that stamps a record with the organisation it runs for (see
    :func:`stamped`); an import makes it once per batch and passes it to the record builder."""
    return ("ce_organisatie", organisatie.encode())
