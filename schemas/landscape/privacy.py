"""Who owns a landscape object, and what of an event may leave the hub for whom.

One owner for two rules every path shares (deliveries by push, pull, replay; imports and
publish checks; exports and DLQ views call the same function):

- :func:`owner_of`: the organisation that owns an object (``afnemer`` of a gebruik,
  ``aanbieder`` of an applicatie, ``organisatie`` of a koppeling, an organisatie itself);
  GEMMA objects (referentiecomponent, standaard) have none.
- :func:`visible_event`: an event as a recipient may see it. Private fields
  (:data:`~schemas.landscape.models.PRIVATE_FIELDS`, e.g. ``interneAantekening``) travel in
  the inbound ``vastgelegd`` events; they never leave the hub except to the organisation that
  owns the object. A hub-wide recipient (``None``) is nobody's organisation, so it does not
  get them either. Derived events never carry them (:mod:`hub.services.landscape`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from schemas.landscape.events import parse_inbound_type
from schemas.landscape.models import PRIVATE_FIELDS

__all__ = ["OWNER_FIELDS", "owner_of", "strip_private", "visible_event"]

#: Object type → the field naming its owning organisation (``id``: the organisatie itself).
OWNER_FIELDS: Final[dict[str, str]] = {
    "gebruik": "afnemer",
    "applicatie": "aanbieder",
    "koppeling": "organisatie",
    "organisatie": "id",
}


def owner_of(objecttype: str, state: Mapping[str, Any]) -> str | None:
    """The organisation owning an object in ``state``, or None (GEMMA objects, no owner set)."""
    field = OWNER_FIELDS.get(objecttype)
    value = state.get(field) if field else None
    return value if isinstance(value, str) and value else None


def strip_private(objecttype: str, state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` without the private fields of ``objecttype``."""
    private = PRIVATE_FIELDS.get(objecttype, frozenset())
    return {k: v for k, v in state.items() if k not in private}


def visible_event(event: Mapping[str, Any], recipient: str | None) -> Mapping[str, Any]:
    """``event`` (structured-mode dict) as a recipient owned by organisation ``recipient``
    (``None``: hub-wide) may see it: private fields removed from ``data`` unless ``recipient``
    owns the object. Returns ``event`` itself when nothing is removed (the common case)."""
    parsed = parse_inbound_type(str(event.get("type", "")))
    if parsed is None:
        return event
    objecttype = parsed[0]
    private = PRIVATE_FIELDS.get(objecttype)
    data = event.get("data")
    if not private or not isinstance(data, Mapping) or private.isdisjoint(data.keys()):
        return event
    if recipient is not None and recipient == owner_of(objecttype, data):
        return event
    return {**event, "data": strip_private(objecttype, data)}
