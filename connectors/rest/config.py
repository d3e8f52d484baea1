"""The ``rest`` connector's config: where the items are, how to page, what they become.

Every path is a JMESPath expression (the ``jmespath`` library), checked when the config is
saved, so a typo is a 400 at create time rather than a failing run.
"""

from __future__ import annotations

from typing import Literal

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.http import ApiAuth, http_url
from connectors.rest.writeback import RestWriteBack
from connectors.writeback import write_back_field
from schemas.hub_events import HUB_TYPE_PREFIX
from schemas.landscape.events import TYPE_PREFIX

__all__ = ["Incremental", "Mapping", "Paging", "RestConfig"]

ObjectType = Literal["organisatie", "applicatie", "gebruik", "koppeling", "referentiecomponent", "standaard"]


def _expression(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        jmespath.compile(value)
    except JMESPathError as e:
        raise ValueError(f"not a JMESPath expression: {e}") from e
    return value


class Paging(BaseModel):
    """``next-link``: the next URL at path ``next``; ``page``: ``pageParam``/``sizeParam``
    counting up until a short page; ``link-header``: RFC 8288 ``Link: <…>; rel="next"``;
    ``cursor``: ``cursorParam`` gets the value at ``cursorPath`` until it is empty."""

    model_config = ConfigDict(extra="forbid")

    style: Literal["none", "next-link", "page", "link-header", "cursor"] = Field(
        "none", description="How the next page is found."
    )
    next: str | None = Field(None, description="next-link: JMESPath of the next URL, e.g. _links.next.href.")
    pageParam: str = Field("page", description="page: the page number parameter.")
    sizeParam: str | None = Field("page_size", description="page: the page size parameter (unset: none).")
    size: int = Field(100, ge=1, le=10_000, description="page: items per page.")
    firstPage: int = Field(1, ge=0, description="page: the number of the first page.")
    cursorParam: str | None = Field(None, description="cursor: the parameter that takes the cursor.")
    cursorPath: str | None = Field(None, description="cursor: JMESPath of the next cursor in a page.")

    _paths = field_validator("next", "cursorPath")(_expression)

    @model_validator(mode="after")
    def _complete(self) -> Paging:
        if self.style == "next-link" and not self.next:
            raise ValueError("next-link paging needs next (a JMESPath to the next URL)")
        if self.style == "cursor" and not (self.cursorParam and self.cursorPath):
            raise ValueError("cursor paging needs cursorParam and cursorPath")
        return self


class Incremental(BaseModel):
    model_config = ConfigDict(extra="forbid")

    param: str = Field(description="Query parameter that receives the checkpoint, e.g. updated_after.")
    field: str = Field(description="JMESPath of the item value that advances it, e.g. updated_at.")
    overlapSeconds: float = Field(
        1.0, ge=0, description="Timestamps are sent this much earlier, so items sharing one are not missed."
    )

    _paths = field_validator("field")(_expression)


class Mapping(BaseModel):
    """Exactly one of ``objecttype`` (published as ``…vastgelegd.v1``) and ``type`` (a
    pass-through event type); ``fields`` maps each data field to a JMESPath on the item."""

    model_config = ConfigDict(extra="forbid")

    objecttype: ObjectType | None = Field(None, description="Landscape object type of every item.")
    type: str | None = Field(
        None, pattern=r"^[a-z0-9]+(\.[a-z0-9-]+)+\.v[0-9]+$", description="Pass-through event type."
    )
    fields: dict[str, str] = Field(description="Data field → JMESPath on the item.")
    id: str = Field("id", description="JMESPath of the item's id.")
    subject: str | None = Field(None, description="JMESPath of the subject (default: the id).")
    time: str | None = Field(None, description="JMESPath of the event time.")
    sequence: str | None = Field(None, description="JMESPath of the event sequence.")

    _paths = field_validator("id", "subject", "time", "sequence")(_expression)

    @field_validator("fields")
    @classmethod
    def _field_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for path in value.values():
            _expression(path)
        return value

    @model_validator(mode="after")
    def _one_target(self) -> Mapping:
        if (self.objecttype is None) == (self.type is None):
            raise ValueError("set exactly one of objecttype (landscape) and type (pass-through event)")
        if self.type is not None and self.type.startswith((TYPE_PREFIX, HUB_TYPE_PREFIX)):
            # Passed through, a landscape event would skip the rights, owner and data checks a
            # landscape object gets, and a derived or hub event would pose as the hub's own.
            raise ValueError(
                f"{self.type} is in the landscape's or the hub's namespace ({TYPE_PREFIX}…, "
                f"{HUB_TYPE_PREFIX}…): for a landscape object use objecttype; a pass-through type "
                "is your own (e.g. nl.leverancier.product.gewijzigd.v1)"
            )
        return self


class RestConfig(BaseModel):
    """A source side (``url`` and ``mapping``, read on the schedule), a ``writeBack`` section
    (hub events applied to the API), or both; a connector with only ``writeBack`` is never
    scheduled to poll (:attr:`polls`)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None, description="The list URL (http or https); unset: the connector only writes back."
    )
    items: str = Field("@", description="JMESPath of the list of items in a page, e.g. results.")
    paging: Paging = Field(default_factory=Paging, description="How pages follow each other.")
    incremental: Incremental | None = Field(None, description="Only items changed since the last run.")
    auth: ApiAuth | None = Field(None, description="none, token, basic, apiKey, oauth2; mTLS; proxy.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers (a credential's value is write-only)."
    )
    mapping: Mapping | None = Field(None, description="What each item becomes (with url).")
    source: str | None = Field(None, description="CloudEvents source of pass-through events.")
    maxPages: int = Field(100_000, ge=1, description="A run stops with an error after this many pages.")
    writeBack: RestWriteBack | None = Field(
        None,
        description="Apply hub events to this API: types, method, url template, body mapping "
        "(connectors/rest/writeback.py); selected like a subscription, the connector's own organisatie.",
    )

    _paths = field_validator("items")(_expression)
    _write_back = field_validator("writeBack", mode="before")(write_back_field)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @property
    def polls(self) -> bool:
        """Whether there is a source to read on the schedule (else it only writes back)."""
        return self.url is not None

    @model_validator(mode="after")
    def _sides(self) -> RestConfig:
        if (self.url is None) != (self.mapping is None):
            missing = "mapping" if self.mapping is None else "url"
            raise ValueError(
                f"url and mapping go together ({missing} is missing): set both to read the API on "
                "the schedule, or neither for a connector that only writes back (writeBack)"
            )
        if self.url is None and self.writeBack is None:
            raise ValueError(
                "nothing to do: set url and mapping to read the API, writeBack to apply hub events "
                "to it, or both"
            )
        if self.url is None:
            reading = [
                name
                for name, default in (
                    ("items", "@"),
                    ("paging", Paging()),
                    ("incremental", None),
                    ("source", None),
                )
                if getattr(self, name) != default
            ]
            if reading:
                raise ValueError(
                    f"{', '.join(reading)} only mean something when the connector reads the API: "
                    "set url and mapping, or leave them out for a connector that only writes back"
                )
        return self
