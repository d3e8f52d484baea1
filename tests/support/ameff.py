"""AMEFF test helpers: the shared samples (skipped when absent) and the Open Group XSD via lxml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from connectors.ameff.connector import ameff_records, map_record
from connectors.ameff.parse import parse_ameff
from connectors.base import Change, RecordRejected

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "ameff"


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"shared sample {path} is not here (CI has ../shared/samples)")
    return path


class _LocalSchemas(etree.Resolver):
    """Resolves the XSDs' imports (xml.xsd by its w3.org URL) to the local copies: no network."""

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        local = SAMPLES / "xsd" / system_url.rsplit("/", 1)[-1]
        return self.resolve_filename(str(local), context) if local.exists() else None


def archimate_schema() -> etree.XMLSchema:
    xsd = sample("xsd/archimate3_Model.xsd")
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(_LocalSchemas())
    return etree.XMLSchema(etree.parse(str(xsd), parser))


def map_file(
    path: Path, organisatie: str, *, gemma: bool = False, guid_property: str = "Object ID"
) -> tuple[list[Change], list[str]]:
    """Parse and map an AMEFF file as the ameff connector does; returns changes and rejections
    (what could not be read, then records that failed to map), each as ``where: why``."""
    model = parse_ameff(path, max_bytes=50_000_000)
    changes: list[Change] = []
    records, unread = ameff_records(model, organisatie, gemma)
    rejected = [f"{where}: {why}" for r in unread for where, why in r.problems]
    for record in records:
        try:
            changes.extend(map_record(record.data, organisatie, gemma=gemma, guid_property=guid_property))
        except RecordRejected as e:
            rejected.append(str(e))
    return changes, rejected
