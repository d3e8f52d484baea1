"""Response models of the landscape read API, for the OpenAPI document: each object type's
item (its fields plus ``provenance``), its page, and the landschap, all with examples."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from schemas.landscape import OBJECT_TYPES, LandscapeObject

PROVENANCE_EXAMPLE = {
    "source": "urn:nld:oin:00000001001234567000:systeem:zaaksysteem",
    "eventId": "4b1e7c7e-2f0a-4d5e-9a3b-6c1d2e3f4a5b",
    "time": "2026-11-22T10:15:00Z",
    "sequence": "00000000000000000042",
}


def _examples(**example: Any) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


def object_example(objecttype: str) -> dict[str, Any]:
    """The model's own example as the API shows it: every field, and its provenance."""
    model = OBJECT_TYPES[objecttype]
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict) and isinstance(extra["examples"], list)
    dumped = model.model_validate(extra["examples"][0]).model_dump(mode="json")
    return dumped | {"provenance": PROVENANCE_EXAMPLE}


class ProvenanceOut(BaseModel):
    """The event that put the object in its current state."""

    model_config = _examples(**PROVENANCE_EXAMPLE)
    source: str
    eventId: str
    time: str | None
    sequence: str | None


def _item_model(objecttype: str, model: type[LandscapeObject]) -> type[BaseModel]:
    item: type[BaseModel] = create_model(
        f"{model.__name__}Item",
        __base__=model,
        provenance=(ProvenanceOut, Field(description="the event behind the current state")),
    )
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict)
    item.model_config["json_schema_extra"] = {**extra, "examples": [object_example(objecttype)]}
    item.model_rebuild(force=True)
    return item


ITEM_MODELS = {objecttype: _item_model(objecttype, model) for objecttype, model in OBJECT_TYPES.items()}


def _list_of(model: type[BaseModel]) -> Any:
    return list[model]  # type: ignore[valid-type]


def _required(model: type[BaseModel]) -> Any:
    return model


def _optional(model: type[BaseModel]) -> Any:
    return model | None


def page_model(objecttype: str) -> type[BaseModel]:
    next_page = "https://koppelhub.example/api/v1/…?limit=100&cursor=WyJ4Il0"
    page: type[BaseModel] = create_model(
        f"{OBJECT_TYPES[objecttype].__name__}Page",
        __config__=_examples(items=[object_example(objecttype)], next=next_page),
        items=(_list_of(ITEM_MODELS[objecttype]), ...),
        next=(str | None, Field(description="URL of the next page; null on the last")),
    )
    return page


_GEBRUIK_MET_APPLICATIE = {"gebruik": object_example("gebruik"), "applicatie": object_example("applicatie")}
GebruikMetApplicatie = create_model(
    "GebruikMetApplicatie",
    __config__=_examples(**_GEBRUIK_MET_APPLICATIE),
    gebruik=(_required(ITEM_MODELS["gebruik"]), ...),
    applicatie=(
        _optional(ITEM_MODELS["applicatie"]),
        Field(
            description="the applicatie in use; null while the reference dangles (not asserted, or withdrawn)"
        ),
    ),
)
LandschapOut = create_model(
    "LandschapOut",
    __config__=_examples(
        organisatie=object_example("organisatie"),
        gebruik=[_GEBRUIK_MET_APPLICATIE],
        koppelingen=[object_example("koppeling")],
    ),
    organisatie=(
        _optional(ITEM_MODELS["organisatie"]),
        Field(description="null while only references to the organisatie exist"),
    ),
    gebruik=(_list_of(GebruikMetApplicatie), ...),
    koppelingen=(_list_of(ITEM_MODELS["koppeling"]), ...),
)
