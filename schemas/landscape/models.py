"""One pydantic model per Softwarecatalogus object type, and the data of ``ingetrokken``.

Canonical state: ``model.model_dump(mode="json")`` has every field, ``None`` for an absent
optional one, and each list of ids deduplicated and sorted (the lists are sets), so two
dumps compare equal exactly when the states are the same. References are ids of other
objects and are not resolved here. Fields marked ``x-private`` (:data:`PRIVATE_FIELDS`)
must never leave the hub in a derived event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Final, Literal, NoReturn
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

__all__ = [
    "OBJECT_TYPES",
    "PATTERN_MESSAGES",
    "PRIVATE_FIELDS",
    "Applicatie",
    "Gebruik",
    "GebruikVoorstel",
    "Ingetrokken",
    "Koppeling",
    "LandscapeObject",
    "Organisatie",
    "Referentiecomponent",
    "Standaard",
    "koppeling_side_b_problem",
]

# Rust-regex (pydantic-core) and ECMA-262 (JSON Schema) alike.
_ID_RE = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
_TEXT_RE = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
_OIN_RE = r"^[0-9]{20}$"
_KVK_RE = r"^[0-9]{8}$"
PATTERN_MESSAGES: Final = {  # pattern -> message for an outside developer
    _ID_RE: "must be an id: no control characters and no leading or trailing spaces",
    _TEXT_RE: "must contain text and no control characters",
    _OIN_RE: "must be an OIN: a string of 20 digits, e.g. '00000001001234567000'",
    _KVK_RE: "must be a KvK-nummer: a string of 8 digits, e.g. '12345678'",
}


def _fail(reason: str, field: str = "") -> NoReturn:
    # The reason goes through ctx so braces in user input are never format fields.
    raise PydanticCustomError("landscape", "{reason}", {"reason": reason, "field": field})


_SIDE_B = (
    "is required unless buitengemeentelijkeVoorziening is given: a koppeling links "
    "applicatieA to another applicatie or to a buitengemeentelijke voorziening"
)


def koppeling_side_b_problem(raw: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(field, message)`` when raw koppeling data names neither side B, else None."""
    if raw.get("applicatieB") is None and raw.get("buitengemeentelijkeVoorziening") is None:
        return ("applicatieB", _SIDE_B)
    return None


def _as_set(ids: list[str]) -> list[str]:
    return sorted(set(ids))


def _show(value: Any) -> str:
    """``value`` as an outside developer reads it: JSON words for null and booleans."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_url(value: str) -> str:
    try:
        host = urlsplit(value).hostname if value.lower().startswith(("http://", "https://")) else None
    except ValueError:
        host = None
    if not host or any(c.isspace() or not c.isprintable() for c in value):
        _fail(f"must be an http(s) URL without spaces, e.g. 'https://www.gemeente.nl' (got {_show(value)})")
    return value


def _title(name: str, _info: Any) -> str:
    return name  # the register's field name, not pydantic's "Applicatiea"


def _ids(target: str) -> Any:
    return Field(
        default_factory=list, description=f"ids of {target} objects; order and duplicates do not matter"
    )


def _private(description: str) -> Any:
    return Field(default=None, description=description, json_schema_extra={"x-private": True})


Id = Annotated[str, Field(min_length=1, pattern=_ID_RE)]
Text = Annotated[str, Field(min_length=1, pattern=_TEXT_RE)]
Oin = Annotated[str, Field(pattern=_OIN_RE)]
KvkNummer = Annotated[str, Field(pattern=_KVK_RE)]
IdList = Annotated[list[Id], AfterValidator(_as_set)]
Url = Annotated[
    str,
    AfterValidator(_check_url),
    Field(json_schema_extra={"format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"}),
]


class LandscapeObject(BaseModel):
    """Base of the six object types: an ``id`` and the shared validation rules."""

    model_config = ConfigDict(extra="forbid", frozen=True, field_title_generator=_title)
    objecttype: ClassVar[str]

    id: Id = Field(description="The object's id in its register; other objects refer to it by this id.")


class Organisatie(LandscapeObject):
    """An organisation: a municipality, a supplier, a partnership or a community."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "5b8e0a1c-3f7d-4c2e-9a61-0d4f2b7e8c13", "naam": "Gemeente Voorbeeldstad",
        "type": "Gemeente", "oin": "00000001001234567000", "kvkNummer": "12345678",
        "cbsCode": "0999", "website": "https://www.voorbeeldstad.nl", "status": "Actief",
    }]})  # fmt: skip
    objecttype: ClassVar[str] = "organisatie"

    naam: Text
    type: Literal["Gemeente", "Leverancier", "Samenwerking", "Community"]
    oin: Oin | None = Field(None, description="Organisatie-identificatienummer (20 digits)")
    kvkNummer: KvkNummer | None = Field(None, description="Kamer van Koophandel number (8 digits)")
    cbsCode: Text | None = Field(None, description="CBS municipality code, e.g. '0344'")
    website: Url | None = None
    status: Literal["Concept", "Actief", "Deactief"] | None = None


class Applicatie(LandscapeObject):
    """An application (a Softwarecatalogus module): a package offered by an aanbieder."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "0f6c2d9e-8b41-4a57-b3e2-6a1d9c4f7e20", "naam": "Open Zaak",
        "aanbieder": "9d2e4b7a-1c3f-4e8d-a5b6-7f0e1d2c3b4a", "type": "Applicatie",
        "licentietype": "Open source",
        "referentiecomponenten": ["3c1f8a2e-6d4b-4f9a-8e7c-2b5d0a9f1e63"],
    }]})  # fmt: skip
    objecttype: ClassVar[str] = "applicatie"

    naam: Text
    aanbieder: Id | None = Field(None, description="id of the organisatie that offers it")
    type: Literal["Applicatie", "Systeemsoftware", "Suite", "Component"] | None = None
    licentietype: Literal["Open source", "Closed source"] | None = None
    referentiecomponenten: IdList = _ids("referentiecomponent")
    licentie: Text | None = Field(None, description="the licence as an SPDX expression, e.g. 'EUPL-1.2'")
    beschrijving: Text | None = Field(None, description="a short description, one sentence")
    versie: Text | None = Field(None, description="the latest released version, e.g. '1.17.0'")
    ontwikkelstatus: Text | None = Field(
        None, description="development status, e.g. publiccode.yml's concept, development, beta, stable"
    )
    website: Url | None = Field(None, description="the product's landing page")
    broncode: Url | None = Field(None, description="the source code repository")


class Gebruik(LandscapeObject):
    """An organisation's use of an applicatie. ``interneAantekening`` is private to the afnemer."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "e4a7c1b2-5d8f-4e3a-9c6b-1f2d3e4a5b6c",
        "afnemer": "5b8e0a1c-3f7d-4c2e-9a61-0d4f2b7e8c13",
        "applicatie": "0f6c2d9e-8b41-4a57-b3e2-6a1d9c4f7e20", "status": "In productie",
        "versie": "1.17.0", "referentiecomponenten": ["3c1f8a2e-6d4b-4f9a-8e7c-2b5d0a9f1e63"],
        "interneAantekening": "Contract loopt tot 2026-12-31; aanbesteding voorbereiden.",
    }]})  # fmt: skip
    objecttype: ClassVar[str] = "gebruik"

    afnemer: Id = Field(description="id of the organisatie that uses the applicatie")
    applicatie: Id = Field(description="id of the applicatie in use")
    status: Literal["Verwerving", "Gepland", "In productie", "Uit te faseren", "Uitgefaseerd"]
    versie: Text | None = None
    referentiecomponenten: IdList = _ids("referentiecomponent")
    interneAantekening: str | None = _private("Internal note, for the afnemer only; never in a derived event")


class Koppeling(LandscapeObject):
    """A link from applicatieA to applicatieB or to a buitengemeentelijke voorziening."""

    model_config = ConfigDict(json_schema_extra={
        "anyOf": [
            {"required": ["applicatieB"], "properties": {"applicatieB": {"type": "string"}}},
            {"required": ["buitengemeentelijkeVoorziening"],
             "properties": {"buitengemeentelijkeVoorziening": {"type": "string"}}},
        ],
        "examples": [{
            "id": "7a9b1c2d-3e4f-4a5b-8c6d-9e0f1a2b3c4d",
            "applicatieA": "0f6c2d9e-8b41-4a57-b3e2-6a1d9c4f7e20",
            "applicatieB": "2d4f6a8c-0e1b-4c3d-9f5a-7b9c1d3e5f70", "type": "api",
            "richting": "bi-directioneel", "organisatie": "5b8e0a1c-3f7d-4c2e-9a61-0d4f2b7e8c13",
            "standaarden": ["b6c8d0e2-4f1a-4b3c-8d5e-6f7a8b9c0d1e"], "status": "In productie",
        }],
    })  # fmt: skip
    objecttype: ClassVar[str] = "koppeling"

    applicatieA: Id = Field(description="id of the applicatie on side A")
    applicatieB: Id | None = Field(None, description="id of the applicatie on side B")
    buitengemeentelijkeVoorziening: Text | None = Field(None, description="national facility on side B")
    type: Literal[
        "api", "webservices", "digikoppeling", "bestandsoverdracht", "message queue",
        "upload naar portaal", "n.v.t.",
    ]  # fmt: skip
    richting: Literal["AnaarB", "BnaarA", "bi-directioneel"] | None = None
    organisatie: Id | None = Field(None, description="id of the organisatie that runs the koppeling")
    standaarden: IdList = _ids("standaard")
    status: Text | None = None

    @model_validator(mode="after")
    def _needs_side_b(self) -> Koppeling:
        if self.applicatieB is None and self.buitengemeentelijkeVoorziening is None:
            _fail(_SIDE_B, "applicatieB")
        return self


class Referentiecomponent(LandscapeObject):
    """A GEMMA reference component; its ``id`` is the GEMMA GUID."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "3c1f8a2e-6d4b-4f9a-8e7c-2b5d0a9f1e63", "naam": "Zaakregistratiecomponent",
        "status": "In gebruik",
    }]})  # fmt: skip
    objecttype: ClassVar[str] = "referentiecomponent"

    naam: Text
    status: Text | None = None


class Standaard(LandscapeObject):
    """A standard (a GEMMA standaardversie) a koppeling can follow."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "b6c8d0e2-4f1a-4b3c-8d5e-6f7a8b9c0d1e", "naam": "ZGW API's", "versie": "1.5",
    }]})  # fmt: skip
    objecttype: ClassVar[str] = "standaard"

    naam: Text
    versie: Text | None = None


class Ingetrokken(BaseModel):
    """The data of an ``ingetrokken`` event: the id of the object that no longer exists."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, field_title_generator=_title,
        json_schema_extra={"examples": [{"id": "e4a7c1b2-5d8f-4e3a-9c6b-1f2d3e4a5b6c"}]},
    )  # fmt: skip

    id: Id = Field(description="id of the object that no longer exists")


class GebruikVoorstel(BaseModel):
    """The data of ``nl.softwarecatalogus.gebruik.voorgesteld.v1``: someone other than the
    afnemer (a supplier's publiccode.yml ``usedBy``, another catalogue) says the afnemer uses
    the applicatie. A proposal, never a gebruik: a supplier may propose, a municipality decides,
    so the projector does not store it; subscribers (the afnemer's own) receive it and may
    record the gebruik themselves."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, field_title_generator=_title,
        json_schema_extra={"examples": [{
            "afnemer": "5b8e0a1c-3f7d-4c2e-9a61-0d4f2b7e8c13",
            "applicatie": "0f6c2d9e-8b41-4a57-b3e2-6a1d9c4f7e20", "status": "In productie",
            "versie": "1.17.0", "bron": "https://github.com/open-zaak/open-zaak/blob/main/publiccode.yaml",
            "voorgesteldDoor": "9d2e4b7a-1c3f-4e8d-a5b6-7f0e1d2c3b4a",
            "toelichting": "usedBy: Gemeente Voorbeeldstad",
        }]},
    )  # fmt: skip

    afnemer: Id = Field(description="id of the organisatie said to use the applicatie")
    applicatie: Id = Field(description="id of the applicatie said to be in use")
    status: Literal["Verwerving", "Gepland", "In productie", "Uit te faseren", "Uitgefaseerd"] | None = Field(
        None, description="the proposed status of the gebruik"
    )
    versie: Text | None = None
    bron: Url | None = Field(None, description="where the proposal comes from, e.g. the publiccode.yml URL")
    voorgesteldDoor: Id | None = Field(None, description="id of the organisatie that proposes it")
    toelichting: Text | None = Field(None, description="why it is proposed, e.g. the name it was matched on")


OBJECT_TYPES: Final[dict[str, type[LandscapeObject]]] = {
    m.objecttype: m for m in (Organisatie, Applicatie, Gebruik, Koppeling, Referentiecomponent, Standaard)
}
PRIVATE_FIELDS: Final[dict[str, frozenset[str]]] = {
    name: frozenset(
        f for f, info in model.model_fields.items()
        if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("x-private")
    )
    for name, model in OBJECT_TYPES.items()
}  # fmt: skip
