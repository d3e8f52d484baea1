"""The ``publiccode`` connector's config: where the files are (exactly one source) and how
names, URIs and sizes are matched and bounded (README "publiccode.yml connector")."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.http import ApiAuth

__all__ = ["PubliccodeConfig"]


def _http(value: str) -> str:
    if not value.lower().startswith(("http://", "https://")) or not urlsplit(value).hostname:
        raise ValueError(f"must be an http(s) URL, got {value[:80]!r}")
    return value


class PubliccodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: list[str] | None = Field(
        None, max_length=100_000, description="publiccode.yml raw URLs or repository URLs."
    )
    catalogue: str | None = Field(
        None, description="URL of an Open Catalog API software list (GET /software, links.next paging)."
    )
    repositories: str | None = Field(
        None,
        description="URL of a JSON list of repositories (html_url or url per item), paged by RFC 8288 Link.",
    )
    aliases: dict[str, str] = Field(
        default_factory=dict,
        description="usedBy name → organisatie id of the municipality (exact names, and any aliases).",
    )
    organisaties: dict[str, str] = Field(
        default_factory=dict,
        description="organisation URI → id of the known organisatie it is (not published again).",
    )
    organisatieType: Literal["Leverancier", "Community", "Samenwerking", "Gemeente"] = Field(
        "Leverancier", description="Type of an aanbieder the hub does not know yet."
    )
    auth: ApiAuth | None = Field(None, description="none, token, basic, apiKey, oauth2; mTLS; proxy.")
    maxFileBytes: int = Field(
        256 * 1024, ge=1024, le=4 * 1024 * 1024, description="A larger publiccode.yml is refused."
    )
    maxPages: int = Field(
        10_000, ge=1, description="A catalogue run stops with an error after this many pages."
    )

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [_http(u.strip()) for u in value]

    @field_validator("catalogue", "repositories")
    @classmethod
    def _list_url(cls, value: str | None) -> str | None:
        return None if value is None else _http(value)

    @model_validator(mode="after")
    def _one_source(self) -> PubliccodeConfig:
        if sum(v is not None for v in (self.urls, self.catalogue, self.repositories)) != 1:
            raise ValueError(
                "set exactly one of urls (publiccode.yml or repository URLs), catalogue and repositories"
            )
        return self
