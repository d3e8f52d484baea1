"""Imports: an uploaded (or CLI) file run once through the connector of its format.

The source of an import's events is ``<hub urn>:import:<organisatie>`` for CSV/xlsx,
``…:import:<organisatie>/ameff`` for AMEFF and ``…/gemma`` for GEMMA imports: stable per
organisation, so re-importing a file finds the fingerprints of the previous import and
publishes only what changed, and a full CSV import never withdraws what an AMEFF import made.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.base import Connector, ConnectorContext
from connectors.events import import_source
from connectors.registry import create
from hub.ports.connectors import Owner, SyncScope

#: What ``objecttype`` may be on an import: a landscape object type or an AMEFF file.
AMEFF = "ameff"


@dataclass(frozen=True)
class ImportSpec:
    organisatie: str
    objecttype: str
    mode: str
    filename: str
    path: Path
    options: dict[str, Any]


def import_kind(spec: ImportSpec) -> str:
    if spec.objecttype == AMEFF:
        return "ameff"
    return "excel" if spec.filename.lower().endswith((".xlsx", ".xlsm")) else "csv"


def import_scope(hub_urn: str, spec: ImportSpec) -> SyncScope:
    key = spec.organisatie
    if spec.objecttype == AMEFF:
        key += "/gemma" if spec.options.get("gemma") else "/ameff"
    return SyncScope(
        source=import_source(hub_urn, "import", key), organisatie=spec.organisatie, key=f"import:{key}"
    )


def import_connector(spec: ImportSpec, context: ConnectorContext) -> Connector[Any]:
    """The connector that reads this import's file; ValidationError for bad options."""
    config: dict[str, Any] = {"location": str(spec.path), "mode": spec.mode, **spec.options}
    if spec.objecttype != AMEFF:
        config["objecttype"] = spec.objecttype
    return create(import_kind(spec), config, context)


def owner(import_id: uuid.UUID) -> Owner:
    return Owner("import", import_id)


__all__ = [
    "AMEFF",
    "ImportSpec",
    "import_connector",
    "import_kind",
    "import_scope",
    "owner",
]
