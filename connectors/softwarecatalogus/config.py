"""The ``softwarecatalogus`` connector's config: where the catalogue is, as whom, what to read.

One connector per organisation: it reads the catalogue with that organisation's credentials
(``auth``: Nextcloud basic auth with an app password, or a token; write-only, the registry's
``SecretStr`` handling) and writes that organisation's changes back with the same credentials.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.http import ApiAuth, base_url
from connectors.writeback import WriteBackConfig, write_back_field

__all__ = ["API_PATH", "SoftwarecatalogusConfig"]

#: The OpenRegister objects API under a Nextcloud base URL (``appinfo/routes.php``).
API_PATH = "/index.php/apps/openregister/api/objects"


class SoftwarecatalogusConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="The Nextcloud base URL the catalogue runs on (http or https).")
    registerId: str = Field(
        "voorzieningen", min_length=1, description="The OpenRegister register: its slug or id."
    )
    auth: ApiAuth = Field(description="This organisation's credentials: basic (app password) or token.")
    organisatie: str = Field(
        min_length=1, description="This organisation's uuid in the catalogue (its hub id is the connector's)."
    )
    organisaties: dict[str, str] = Field(
        default_factory=dict, description="Other organisations: catalogue uuid → their id in the hub."
    )
    pageSize: int = Field(100, ge=1, le=1000, description="Objects per page (_limit).")
    overlapSeconds: float = Field(
        1.0, ge=0, description="Incremental reads ask this much before the checkpoint (@self.updated)."
    )
    sweepEvery: int = Field(
        1,
        ge=0,
        description="Every Nth run also lists every object's id (_fields=id) and withdraws what this "
        "connector brought in that the catalogue no longer holds (deleted there); 1: every run, 0: never.",
    )
    writeBack: WriteBackConfig | None = Field(
        None,
        description="true: write this organisation's gebruik and koppelingen changed in the hub to the "
        "catalogue; or an object narrowing the selection (types, source, filters, retrySchedule).",
    )

    _write_back = field_validator("writeBack", mode="before")(write_back_field)

    _http = field_validator("url")(base_url)
