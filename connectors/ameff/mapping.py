"""AMEFF parts → landscape objects (pure).

- ``ApplicationComponent`` → ``applicatie`` (``naam``; ``aanbieder``, ``type``,
  ``licentietype``, ``referentiecomponenten`` from properties of those names when present),
  plus a ``gebruik`` by the importing organisation (``status`` and ``versie`` from properties
  named ``status``/``gebruiksstatus`` and ``versie``; else ``In productie``). The applicatie id
  is the ``Koppelhub id`` property when the file has one (files this hub exported), else a
  uuid5 of the organisation and the file-local identifier. AMEFF ``documentation`` has no
  field in the applicatie model (extra fields are refused), so it is not carried. A component
  with a ``Koppelhub id`` whose ``aanbieder`` is another organisation is that organisation's
  applicatie (a file this hub exported for someone else): only the gebruik of it is made, the
  applicatie is referenced, not republished (an import may not change another's applicatie).
  Without a ``Koppelhub id`` (a file from an architecture tool), such a component is the
  importer's own description of a product: its applicatie is recorded without that
  ``aanbieder`` (nobody's, as an organisation records only its own objects), not refused.
- ``Flow``, ``Serving``, ``Triggering`` between components → ``koppeling`` from source (A) to
  target (B), ``AnaarB``; ``Association`` → ``bi-directioneel`` unless ``isDirected="true"``.
  A ``richting`` property overrides (``BnaarA`` then names the target A; ``onbekend``: none).
  A relationship to a
  ``Node`` marked ``Koppelhub soort = buitengemeentelijke voorziening`` becomes a koppeling
  to that voorziening. ``type`` from a property (default ``n.v.t.``).
- GEMMA mode: ``ApplicationComponent`` → ``referentiecomponent`` keyed on the GEMMA GUID
  property (matched on the property definition's name, else on its identifier).
"""

from __future__ import annotations

import uuid
from typing import Any, Final, get_args

from connectors.base import Change, RecordRejected
from connectors.ids import NAMESPACE
from connectors.tabular.columns import LIST_SEPARATOR
from schemas.landscape import (
    Gebruik,
    LandscapeDataError,
    LandscapeObject,
    validate_landscape_data,
    vastgelegd_type,
)

__all__ = [
    "KOPPELHUB_ID",
    "KOPPELHUB_SOORT",
    "UNKNOWN_DIRECTION",
    "VOORZIENING",
    "applicatie_id",
    "component_changes",
    "gemma_change",
    "relationship_change",
]

KOPPELHUB_ID: Final = "Koppelhub id"
KOPPELHUB_SOORT: Final = "Koppelhub soort"
UNKNOWN_DIRECTION: Final = "onbekend"  # a koppeling without richting, as exported
VOORZIENING: Final = "buitengemeentelijke voorziening"
_STATUS_NAMES: Final = ("gebruiksstatus", "status")
_GEBRUIK_STATUS: Final = frozenset(
    a for a in get_args(Gebruik.model_fields["status"].annotation) if isinstance(a, str)
)


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(parts)))


def _build(objecttype: str, data: dict[str, Any], where: str) -> LandscapeObject:
    try:
        model = validate_landscape_data(vastgelegd_type(objecttype), data)
    except LandscapeDataError as e:
        raise RecordRejected([(where, f"{objecttype} {field}: {msg}") for field, msg in e.problems]) from e
    assert isinstance(model, LandscapeObject)
    return model


def _list(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(LIST_SEPARATOR) if p.strip()]


def applicatie_id(organisatie: str, identifier: str, props: dict[str, str]) -> str:
    """The applicatie a component stands for (``props`` keyed by case-folded names)."""
    return props.get(KOPPELHUB_ID.casefold()) or _uuid("ameff-applicatie", organisatie, identifier)


def component_changes(organisatie: str, identifier: str, name: str, props: dict[str, str]) -> list[Change]:
    """An applicatie and its gebruik by ``organisatie``; only the gebruik when the component is
    the hub's applicatie of another organisation (see the module docstring)."""
    where = f"element {identifier}"
    if not name:
        raise RecordRejected([(where, "an ApplicationComponent needs a <name>")])
    app_id = applicatie_id(organisatie, identifier, props)
    aanbieder = props.get("aanbieder")
    another = aanbieder not in (None, "", organisatie)
    foreign = another and bool(props.get(KOPPELHUB_ID.casefold()))
    if another and not foreign:  # recorded as nobody's (see the module docstring)
        props = {k: v for k, v in props.items() if k != "aanbieder"}
    changes = [] if foreign else [Change(_applicatie(app_id, name, props, where))]
    status = next((props[n] for n in _STATUS_NAMES if props.get(n) in _GEBRUIK_STATUS), "In productie")
    usage: dict[str, Any] = {
        "id": _uuid("ameff-gebruik", organisatie, app_id),
        "afnemer": organisatie,
        "applicatie": app_id,
        "status": status,
    }
    if props.get("versie"):
        usage["versie"] = props["versie"]
    if props.get("gebruik referentiecomponenten"):
        usage["referentiecomponenten"] = _list(props["gebruik referentiecomponenten"])
    return [*changes, Change(_build("gebruik", usage, where))]


def _applicatie(app_id: str, name: str, props: dict[str, str], where: str) -> LandscapeObject:
    data: dict[str, Any] = {"id": app_id, "naam": name}
    for field in ("aanbieder", "type", "licentietype"):
        if props.get(field.casefold()):
            data[field] = props[field.casefold()]
    if props.get("referentiecomponenten"):
        data["referentiecomponenten"] = _list(props["referentiecomponenten"])
    return _build("applicatie", data, where)


def relationship_change(
    organisatie: str,
    identifier: str,
    kind: str,
    is_directed: bool | None,
    source: tuple[str, str],
    target: tuple[str, str],
    props: dict[str, str],
) -> Change:
    """A koppeling run by ``organisatie``; ``source``/``target`` are ``(applicatie id or voorziening
    name, "applicatie" | "voorziening")``."""
    where = f"relationship {identifier}"
    richting = props.get("richting")
    if richting not in ("AnaarB", "BnaarA", "bi-directioneel"):
        undirected = kind == "Association" and not is_directed
        richting = "bi-directioneel" if undirected else "AnaarB"
    a, b = (target, source) if richting == "BnaarA" else (source, target)
    if a[1] != "applicatie":
        a, b = b, a  # side A is always an applicatie
        richting = {"AnaarB": "BnaarA", "BnaarA": "AnaarB"}.get(richting, richting)
    data: dict[str, Any] = {
        "id": _uuid("ameff-koppeling", organisatie, identifier),
        "applicatieA": a[0],
        "type": props.get("type") or "n.v.t.",
        "richting": None if props.get("richting") == UNKNOWN_DIRECTION else richting,
        "organisatie": organisatie,
    }
    data["applicatieB" if b[1] == "applicatie" else "buitengemeentelijkeVoorziening"] = b[0]
    if props.get("status"):
        data["status"] = props["status"]
    if props.get("standaarden"):
        data["standaarden"] = _list(props["standaarden"])
    return Change(_build("koppeling", data, where))


def gemma_change(identifier: str, name: str, props: dict[str, str], guid_property: str) -> Change:
    """A referentiecomponent keyed on the GEMMA GUID property."""
    where = f"element {identifier}"
    guid = props.get(guid_property.casefold())
    if not guid:
        raise RecordRejected([(where, f"has no GEMMA GUID property {guid_property!r}")])
    data: dict[str, Any] = {"id": guid, "naam": name}
    if props.get("status"):
        data["status"] = props["status"]
    return Change(_build("referentiecomponent", data, where))
