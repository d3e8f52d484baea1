"""Write-back to the Softwarecatalogus: an organisation's gebruik and koppelingen, as it.

The connector consumes the hub's derived events of its own organisation
(``nl.softwarecatalogus.{gebruik,koppeling}.{aangemaakt,gewijzigd,verwijderd}.v1``, whose
``data`` is the object's whole public state) and brings the catalogue object in step:

1. ``GET /objects/{register}/{schema}/{id}`` (404: not in the catalogue);
2. no echo: when the catalogue object, read as landscape data, already equals the event's
   (public fields), nothing is written (``…ongewijzigd``). That is the case for every change
   that came from the catalogue itself (the hub derived it from this connector's read), and
   for one the catalogue was given meanwhile; an object changed here since differs, and is
   written;
3. a conflict: when the catalogue object changed since this connector last read it (its
   digest differs from the one the hub kept), the catalogue's version wins: it reaches the
   hub with the next read, and this event, older or concurrent, is not written over it
   (``…ongewijzigd`` with ``actie: conflict``; a ``verwijderd`` is not applied either). This
   also keeps a late echo of an earlier catalogue version from overwriting a newer one;
4. ``PUT`` the catalogue object with the hub's fields set (its other fields kept), or ``POST``
   it (with its id) when absent; ``verwijderd``: ``DELETE`` when present;
5. the outcome (``…bijgewerkt`` with the written object's ``fingerprint``, which the hub keeps
   as what this connector read last: the next read of the object as written is unchanged, so
   not re-imported).

An event whose ``source`` is the connector's own is never written back (the connector refuses
it before anything is asked of the catalogue). Network trouble, 5xx, 408 and 429 raise
:class:`SourceUnavailable` (retried on the delivery's schedule); 401 and 403 (the
organisation's credentials) :class:`SourceRefused` (the delivery ends dead with the reason);
another 4xx is the catalogue refusing the object (``…geweigerd``, with its answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import httpx

from connectors.base import RecordRejected, SourceRefused
from connectors.http import ApiClient, excerpt
from connectors.softwarecatalogus.mapping import SCHEMA_OF, Ids, catalogue_body, digest, public, to_landscape
from schemas.landscape import LandscapeObject, parse_derived_type

__all__ = ["BIJGEWERKT", "CONSUMES", "GEWEIGERD", "ONGEWIJZIGD", "apply"]

WRITTEN_TYPES: Final = ("gebruik", "koppeling")
CONSUMES: Final = tuple(
    f"nl.softwarecatalogus.{t}.{verb}.v1"
    for t in WRITTEN_TYPES
    for verb in ("aangemaakt", "gewijzigd", "verwijderd")
)
BIJGEWERKT: Final = "nl.koppelhub.softwarecatalogus.bijgewerkt.v1"
ONGEWIJZIGD: Final = "nl.koppelhub.softwarecatalogus.ongewijzigd.v1"
GEWEIGERD: Final = "nl.koppelhub.softwarecatalogus.geweigerd.v1"

Outcome = tuple[str, dict[str, Any], bool]


def _unless_refused(api: ApiClient, response: httpx.Response) -> None:
    """Raise for an answer that is not the catalogue refusing this object: 5xx, 408 and 429 are
    retried (:class:`SourceUnavailable`); 401 and 403, the organisation's credentials, end the
    delivery at once with the reason (:class:`SourceRefused`)."""
    if response.status_code >= 500 or response.status_code in (401, 403, 408, 429):
        raise api.failed(response, "the Softwarecatalogus")


def _refused(api: ApiClient, response: httpx.Response, what: str, base: dict[str, Any]) -> Outcome:
    _unless_refused(api, response)
    return GEWEIGERD, {**base, "reason": f"{what} answered {response.status_code}: {excerpt(response)}"}, True


async def apply(
    api: ApiClient, objects_url: str, ids: Ids, event: Mapping[str, Any], seen: str | None
) -> Outcome:
    """Apply one derived event (structured JSON) to the catalogue (see the module docstring);
    ``seen``: the digest of the object as this connector read it last (None: never read)."""
    parsed = parse_derived_type(str(event.get("type", "")))
    if parsed is None or parsed[0] not in WRITTEN_TYPES:
        raise SourceRefused(
            f"softwarecatalogus writes back gebruik and koppelingen, not {event.get('type')!r}"
        )
    objecttype, verb = parsed
    data = event.get("data")
    object_id = str(event.get("subject") or "")
    if not isinstance(data, Mapping) or not object_id:
        raise SourceRefused("a derived event without the object's data or subject")
    base = {"objecttype": objecttype, "id": object_id, "verzoek": event.get("id")}
    url = f"{objects_url}/{SCHEMA_OF[objecttype]}/{object_id}"
    response = await api.request("GET", url)
    if response.status_code not in (200, 404):
        return _refused(api, response, "GET", base)
    current: dict[str, Any] | None = None
    if response.status_code == 200:
        try:
            current = response.json()
        except ValueError:
            current = None
        if not isinstance(current, dict):
            raise SourceRefused(
                f"the Softwarecatalogus answered GET {object_id} with something not an object"
            )
    model: LandscapeObject | None = None
    if current is not None:
        try:
            model = to_landscape(objecttype, current, ids)
        except RecordRejected:
            model = None  # the catalogue's version does not even map: the hub's is written
    # Changed in the catalogue since the last read: that version reaches the hub with the next
    # read and wins (writing this older or concurrent event over it would lose it on both sides).
    conflict = model is not None and seen is not None and digest(model) != seen
    if verb == "verwijderd":
        if current is None or conflict:
            return ONGEWIJZIGD, {**base, "actie": "conflict" if conflict else "geen"}, False
        gone = await api.request("DELETE", url)
        if gone.status_code not in (200, 204, 404):
            return _refused(api, gone, "DELETE", base)
        return BIJGEWERKT, {**base, "actie": "verwijderd"}, False
    wanted = public(objecttype, dict(data))
    if model is not None and public(objecttype, model.model_dump(mode="json")) == wanted:
        return ONGEWIJZIGD, {**base, "actie": "geen"}, False
    if conflict:
        return ONGEWIJZIGD, {**base, "actie": "conflict"}, False
    body = catalogue_body(objecttype, wanted, ids, current)
    if current is None:
        written = await api.request("POST", f"{objects_url}/{SCHEMA_OF[objecttype]}", json=body)
    else:
        written = await api.request("PUT", url, json=body)
    if written.status_code not in (200, 201):
        return _refused(api, written, "PUT" if current else "POST", base)
    try:
        fingerprint = digest(to_landscape(objecttype, written.json(), ids))
    except (ValueError, RecordRejected):
        fingerprint = None  # the next read publishes it once, as the catalogue keeps it
    actie = "aangemaakt" if current is None else "bijgewerkt"
    return BIJGEWERKT, {**base, "actie": actie, "fingerprint": fingerprint}, False
