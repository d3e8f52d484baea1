"""The Softwarecatalogus's objects as landscape objects and back: pure functions, no I/O.

The catalogue (OpenRegister register ``voorzieningen``, ``lib/Settings/
softwarecatalogus_register.json`` of ``ConductionNL/openregister``) names its objects and
fields in its own way; the hub keeps DOMAIN.md §2's names. Related objects arrive either as a
uuid or as the object itself (``{"id": …}`` or ``{"@self": {"id": …}}``): :func:`ref` takes
the uuid of either. Organisations are translated by :class:`Ids`: the catalogue's uuid of an
organisation the hub knows under another id (the connector's own, plus ``organisaties``).

Catalogue field → landscape field, per object:

- ``organisatie``: ``naam``, ``type``, ``oin``, ``kvkNummer`` (``kvk``), ``cbsCode``
  (``cbsNummer``), ``website``, ``status``;
- ``module`` → ``applicatie``: ``naam``, ``aanbieder``, ``type`` (``moduleType``),
  ``licentietype`` (``licentie``), ``referentieComponenten`` → ``referentiecomponenten``;
- ``gebruik``: ``afnemer`` (else ``@self.organisation``), ``module`` → ``applicatie``,
  ``status``, ``versie``, ``gebruiktVoorReferentiecomponenten`` → ``referentiecomponenten``,
  ``interneAantekening``;
- ``koppeling``: ``moduleA``/``moduleB`` → ``applicatieA``/``applicatieB``,
  ``buitengemeentelijkVoorziening`` → ``buitengemeentelijkeVoorziening``, ``type`` (the
  register's ``message que`` is ``message queue``), ``gegevensuitwisselingRichting`` →
  ``richting``, ``standaardversies`` → ``standaarden``, ``status``, the owner
  ``@self.organisation`` → ``organisatie``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from connectors.base import RecordRejected
from connectors.ids import content_hash
from schemas.landscape import LandscapeDataError, LandscapeObject, validate_landscape_data, vastgelegd_type
from schemas.landscape.models import PRIVATE_FIELDS
from schemas.landscape.privacy import owner_of

__all__ = [
    "SCHEMA_OF",
    "Ids",
    "catalogue_body",
    "catalogue_id",
    "digest",
    "landscape_data",
    "public",
    "ref",
    "to_landscape",
]

#: Landscape object type → the catalogue's schema (slug) in the register.
SCHEMA_OF: Final[dict[str, str]] = {
    "organisatie": "organisatie",
    "applicatie": "module",
    "gebruik": "gebruik",
    "koppeling": "koppeling",
}
#: Per object type: landscape field → catalogue field (the plain ones; references below).
_PLAIN: Final[dict[str, dict[str, str]]] = {
    "organisatie": {"naam": "naam", "type": "type", "oin": "oin", "kvkNummer": "kvk", "cbsCode": "cbsNummer",
                    "website": "website", "status": "status"},
    "applicatie": {"naam": "naam", "type": "moduleType", "licentietype": "licentie"},
    "gebruik": {"status": "status", "versie": "versie", "interneAantekening": "interneAantekening"},
    "koppeling": {"type": "type", "richting": "gegevensuitwisselingRichting", "status": "status"},
}  # fmt: skip
#: Per object type: landscape field → (catalogue field, is a list, is an organisation).
_REFS: Final[dict[str, dict[str, tuple[str, bool, bool]]]] = {
    "organisatie": {},
    "applicatie": {"aanbieder": ("aanbieder", False, True),
                   "referentiecomponenten": ("referentieComponenten", True, False)},
    "gebruik": {"afnemer": ("afnemer", False, True), "applicatie": ("module", False, False),
                "referentiecomponenten": ("gebruiktVoorReferentiecomponenten", True, False)},
    "koppeling": {"applicatieA": ("moduleA", False, False), "applicatieB": ("moduleB", False, False),
                  "buitengemeentelijkeVoorziening": ("buitengemeentelijkVoorziening", False, False),
                  "standaarden": ("standaardversies", True, False)},
}  # fmt: skip
#: The register's spelling of a value → the landscape's.
_VALUES: Final[dict[tuple[str, str], dict[str, str]]] = {
    ("koppeling", "type"): {"message que": "message queue"}
}


@dataclass(frozen=True)
class Ids:
    """Organisation ids: catalogue uuid ↔ hub id, for those that differ."""

    to_hub: Mapping[str, str] = field(default_factory=dict)

    def hub(self, catalogue_id: str) -> str:
        return self.to_hub.get(catalogue_id, catalogue_id)

    def catalogue(self, hub_id: str) -> str:
        for catalogue_id, known in self.to_hub.items():
            if known == hub_id:
                return catalogue_id
        return hub_id


def ref(value: Any) -> str | None:
    """The uuid of a related object given as a uuid or as the object."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, Mapping):
        own = value.get("id")
        if isinstance(own, str | int) and own != "":
            return str(own)
        meta = value.get("@self")
        if isinstance(meta, Mapping) and isinstance(meta.get("id"), str | int):
            return str(meta["id"])
    return None


def _meta(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = raw.get("@self")
    return meta if isinstance(meta, Mapping) else {}


def catalogue_id(raw: Mapping[str, Any]) -> str | None:
    """The catalogue's uuid of an object: its ``id``, else ``@self.id`` or ``@self.uuid``."""
    meta = _meta(raw)
    return ref(raw.get("id")) or ref(meta.get("id")) or ref(meta.get("uuid"))


def landscape_data(objecttype: str, raw: Mapping[str, Any], ids: Ids) -> dict[str, Any]:
    """A catalogue object as landscape data (not yet validated); absent fields left out."""
    meta = _meta(raw)
    object_id = catalogue_id(raw)
    if object_id is None:
        raise RecordRejected([("id", "a catalogue object without an id (neither id nor @self.id)")])
    data: dict[str, Any] = {"id": ids.hub(object_id) if objecttype == "organisatie" else object_id}
    for ours, theirs in _PLAIN[objecttype].items():
        value = raw.get(theirs)
        if value is not None and value != "":
            data[ours] = (
                _VALUES.get((objecttype, ours), {}).get(value, value) if isinstance(value, str) else value
            )
    for ours, (theirs, many, organisation) in _REFS[objecttype].items():
        value = raw.get(theirs)
        if many:
            found = [r for r in map(ref, value if isinstance(value, list) else []) if r]
            if found:
                data[ours] = found
        elif (one := ref(value)) is not None:
            data[ours] = ids.hub(one) if organisation else one
    owner = ref(meta.get("organisation"))
    if objecttype == "gebruik" and "afnemer" not in data and owner:
        data["afnemer"] = ids.hub(owner)
    if objecttype == "koppeling" and owner:
        data["organisatie"] = ids.hub(owner)
    return data


def to_landscape(objecttype: str, raw: Mapping[str, Any], ids: Ids) -> LandscapeObject:
    """A catalogue object as a validated landscape object (:class:`RecordRejected` if not)."""
    data = landscape_data(objecttype, raw, ids)
    try:
        model = validate_landscape_data(vastgelegd_type(objecttype), data)
    except LandscapeDataError as e:
        raise RecordRejected([(f.removeprefix("data."), m) for f, m in e.problems]) from e
    assert isinstance(model, LandscapeObject)
    return model


def digest(model: LandscapeObject) -> str:
    """The content digest the sync runner keeps for a connector's object (the same hash)."""
    return content_hash(model.model_dump(mode="json"))


def public(objecttype: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical data without private fields and the event-only ``wijzigingen``: what a derived
    event carries, so a catalogue object and a hub change compare field by field."""
    private = PRIVATE_FIELDS[objecttype] | {"wijzigingen"}
    return {k: v for k, v in data.items() if k not in private}


def owned_by(objecttype: str, model: LandscapeObject, organisatie: str) -> bool:
    """Whether the connector's organisation owns ``model`` (organisaties: everyone's to read)."""
    if objecttype == "organisatie":
        return True
    return owner_of(objecttype, model.model_dump(mode="json")) in (organisatie, None)


def catalogue_body(
    objecttype: str, data: Mapping[str, Any], ids: Ids, current: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The catalogue object to write for landscape ``data``: ``current`` (the catalogue's, its
    other fields kept) with the landscape's fields set; ``@self`` is left to the catalogue."""
    body = {k: v for k, v in (current or {}).items() if k != "@self"}
    body["id"] = str(data["id"])
    for ours, theirs in _PLAIN[objecttype].items():
        if ours in PRIVATE_FIELDS[objecttype]:
            continue  # never in a derived event: the catalogue keeps its own
        value = data.get(ours)
        back = {v: k for k, v in _VALUES.get((objecttype, ours), {}).items()}
        body[theirs] = back.get(value, value) if isinstance(value, str) else value
    for ours, (theirs, many, organisation) in _REFS[objecttype].items():
        value = data.get(ours)
        if many:
            body[theirs] = list(value or [])
        else:
            body[theirs] = ids.catalogue(value) if organisation and isinstance(value, str) else value
    return body
