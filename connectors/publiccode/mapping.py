"""One publiccode.yml → its applicatie, its aanbieder (when not yet known) and gebruik proposals.

Pure and deterministic, so a second run of an unchanged file makes the same objects (the
runner's fingerprints then publish nothing):

- the applicatie's id is derived from the file's ``url`` (the standard's identity of the
  software: scheme and host lower-cased, a trailing ``/`` or ``.git`` dropped), so it stays the
  same across runs, hosts of the file and catalogues that list it;
- the aanbieder is ``organisation`` (v0.4+: matched on its ``uri``, never its name), else
  ``legal.mainCopyrightOwner``, else the first maintenance contractor (matched on the name,
  as nothing better identifies them). A URI the config maps to a known organisatie is that
  organisatie and is not published again; any other is an organisatie of the configured type
  (Leverancier by default) whose id is derived from the URI (or name);
- each ``usedBy`` name that names a municipality exactly, or through the config's alias table,
  becomes a :class:`~schemas.landscape.GebruikVoorstel` (a proposal, never a gebruik: the
  municipality decides); the others are returned as unmatched for the run report.

The applicatie also carries ``licentie`` (``legal.license``; ``licentietype`` is Open source,
as every publiccode.yml declares an open licence), ``beschrijving`` (``description.nl``, else
``en``, else the first language's ``shortDescription``, whitespace collapsed), ``versie``
(``softwareVersion``), ``ontwikkelstatus`` (``developmentStatus``), ``website`` (``landingURL``)
and ``broncode`` (``url``), each only when it is valid landscape data (an http(s) URL for the
last two): an odd optional value is left out rather than costing the file.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from connectors.publiccode.schema import PubliccodeProblem, problems
from schemas.landscape import (
    Applicatie,
    GebruikVoorstel,
    LandscapeDataError,
    Organisatie,
    validate_landscape_data,
    vastgelegd_type,
)

__all__ = ["NAMESPACE", "Mapped", "Matching", "applicatie_id", "canonical_url", "map_document"]

#: uuid5 namespace of the ids this connector derives (applicaties and aanbieders).
NAMESPACE: Final = uuid.UUID("0d4b5f2e-8c1a-5e37-9b6d-3f2a1c0e7b45")
COMPONENT_TYPES: Final = frozenset({"library", "addon"})


@dataclass(frozen=True)
class Matching:
    """How names and URIs in files find organisaties already known (from the connector config)."""

    #: ``usedBy`` name → organisatie id: the municipalities' exact names and any aliases.
    gemeenten: Mapping[str, str] = field(default_factory=dict)
    #: organisation URI → id of the organisatie it is (not published again).
    organisaties: Mapping[str, str] = field(default_factory=dict)
    #: The type of an aanbieder the hub does not know yet.
    organisatie_type: str = "Leverancier"


@dataclass(frozen=True)
class Mapped:
    applicatie: Applicatie
    organisatie: Organisatie | None
    proposals: list[GebruikVoorstel]
    unmatched: list[str]


def canonical_url(url: str) -> str:
    """``url`` as an identity: trimmed, scheme and host lower-cased, no trailing ``/`` or ``.git``."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    path = path.removesuffix(".git").rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def applicatie_id(url: str) -> str:
    """The applicatie id of the software whose publiccode.yml ``url`` is ``url``."""
    return str(uuid.uuid5(NAMESPACE, "applicatie\x1f" + canonical_url(url)))


def _organisatie_id(key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "organisatie\x1f" + key))


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _section(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _aanbieder(doc: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(uri, name)`` of the organisation that offers the software, either may be None."""
    org = _section(doc, "organisation")
    uri, name = _text(org.get("uri")), _text(org.get("name"))
    if uri or name:
        return uri, name
    legal = _section(doc, "legal")
    owner = _text(legal.get("mainCopyrightOwner"))
    if owner:
        return None, owner
    maintenance = _section(doc, "maintenance")
    for contractor in maintenance.get("contractors") or []:
        if isinstance(contractor, dict) and _text(contractor.get("name")):
            return _text(contractor.get("website")), _text(contractor.get("name"))
    return None, None


def _landscape(objecttype: str, data: dict[str, Any], what: str) -> Any:
    try:
        return validate_landscape_data(vastgelegd_type(objecttype), data)
    except LandscapeDataError as e:
        raise PubliccodeProblem([(what, f"{f.removeprefix('data.')} {m}") for f, m in e.problems]) from e


def _organisatie(doc: Mapping[str, Any], matching: Matching) -> tuple[str | None, Organisatie | None]:
    uri, name = _aanbieder(doc)
    if uri and uri in matching.organisaties:
        return matching.organisaties[uri], None
    if not (uri or name):
        return None, None
    key = f"uri\x1f{uri}" if uri else f"naam\x1f{(name or '').casefold()}"
    data: dict[str, Any] = {
        "id": _organisatie_id(key),
        "naam": name or uri,
        "type": matching.organisatie_type,
    }
    if uri and uri.lower().startswith(("http://", "https://")):
        data["website"] = uri
    org = _landscape("organisatie", data, "organisation")
    return org.id, org


def _proposal(data: dict[str, Any]) -> GebruikVoorstel:
    try:
        return GebruikVoorstel.model_validate(data)
    except ValidationError:
        # An odd version or source URL must not cost the proposal: keep what identifies it.
        return GebruikVoorstel.model_validate(
            {k: v for k, v in data.items() if k in ("afnemer", "applicatie", "voorgesteldDoor")}
        )


def _short_description(doc: Mapping[str, Any]) -> str | None:
    description = _section(doc, "description")
    languages = [lang for lang in ("nl", "en") if lang in description] or list(description)[:1]
    for lang in languages:
        text = _text(_section(description, lang).get("shortDescription"))
        if text:
            return " ".join(text.split())
    return None


def _with_details(applicatie: Applicatie, doc: Mapping[str, Any]) -> Applicatie:
    """``applicatie`` with each detail of the file that is valid landscape data."""
    details = {
        "licentie": _text(_section(doc, "legal").get("license")),
        "beschrijving": _short_description(doc),
        "versie": _text(doc.get("softwareVersion")),
        "ontwikkelstatus": _text(doc.get("developmentStatus")),
        "website": _text(doc.get("landingURL")),
        "broncode": _text(doc.get("url")),
    }
    state = applicatie.model_dump()
    given = {k: v for k, v in details.items() if v is not None}
    try:
        return Applicatie.model_validate({**state, **given})  # the common case: all valid
    except ValidationError:
        pass
    for name, value in given.items():
        try:
            Applicatie.model_validate({**state, name: value})
        except ValidationError:
            continue
        state[name] = value
    return Applicatie.model_validate(state)


def map_document(doc: Mapping[str, Any], bron: str | None, matching: Matching) -> Mapped:
    """The objects one publiccode.yml stands for; :class:`PubliccodeProblem` (schema paths)
    when it is not a valid publiccode.yml, or maps to no valid applicatie."""
    found = problems(dict(doc))
    if found:
        raise PubliccodeProblem(found)
    aanbieder, organisatie = _organisatie(doc, matching)
    software_type = doc.get("softwareType")
    data: dict[str, Any] = {
        "id": applicatie_id(str(doc["url"])),
        "naam": str(doc["name"]).strip(),
        "type": "Component" if software_type in COMPONENT_TYPES else "Applicatie",
        "licentietype": "Open source",
    }
    if aanbieder:
        data["aanbieder"] = aanbieder
    applicatie: Applicatie = _landscape("applicatie", data, "name")
    applicatie = _with_details(applicatie, doc)
    proposals, unmatched = [], []
    for raw in dict.fromkeys(n.strip() for n in doc.get("usedBy") or [] if isinstance(n, str) and n.strip()):
        afnemer = matching.gemeenten.get(raw)
        if afnemer is None:
            unmatched.append(raw)
            continue
        proposal = {
            "afnemer": afnemer,
            "applicatie": applicatie.id,
            "status": "In productie",
            "versie": _text(doc.get("softwareVersion")),
            "bron": bron,
            "voorgesteldDoor": aanbieder,
            "toelichting": f"usedBy: {raw}",
        }
        proposals.append(_proposal({k: v for k, v in proposal.items() if v is not None}))
    return Mapped(applicatie, organisatie, proposals, unmatched)
