"""Connector kind ``ameff``: an ArchiMate exchange file becomes the organisation's landscape.

The whole file is parsed (safely, see :mod:`connectors.ameff.parse`) before the first record
is yielded, so a malformed or hostile file publishes nothing. By default a run is ``full``:
gebruik and koppelingen that disappeared from the file since the last run are withdrawn.
Applicaties are never withdrawn by an AMEFF import: other organisations may use them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors.ameff.mapping import (
    KOPPELHUB_SOORT,
    VOORZIENING,
    applicatie_id,
    component_changes,
    gemma_change,
    relationship_change,
)
from connectors.ameff.parse import AmeffModel, parse_ameff
from connectors.base import Batch, Change, Connector, Record
from connectors.registry import register
from connectors.sources import fetch_configured

__all__ = ["AmeffConfig", "AmeffConnector", "ameff_records", "map_record"]

SAMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<model xmlns="http://www.opengroup.org/xsd/archimate/3.0/"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" identifier="id-sample">
  <name xml:lang="nl">Voorbeeld</name>
  <elements>
    <element identifier="id-a" xsi:type="ApplicationComponent"><name xml:lang="nl">Zaaksysteem</name>
      <properties><property propertyDefinitionRef="pd-status"><value>Gepland</value></property></properties>
    </element>
    <element identifier="id-b" xsi:type="ApplicationComponent"><name xml:lang="nl">DMS</name></element>
    <element identifier="id-c" xsi:type="BusinessActor"><name xml:lang="nl">Burger</name></element>
  </elements>
  <relationships>
    <relationship identifier="id-r1" source="id-a" target="id-b" xsi:type="Flow"/>
    <relationship identifier="id-r2" source="id-a" target="id-b" xsi:type="Association"/>
  </relationships>
  <propertyDefinitions>
    <propertyDefinition identifier="pd-status" type="string"><name>Status</name></propertyDefinition>
  </propertyDefinitions>
</model>
"""


class AmeffConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    location: str = Field(description="An absolute path under an allowed directory, or an http(s) URL.")
    mode: Literal["incremental", "full"] = Field(
        "full",
        description="full: gebruik, koppelingen (GEMMA: referentiecomponenten) that disappeared go",
    )
    gemma: bool = Field(False, description="Import ApplicationComponents as GEMMA referentiecomponenten.")
    gemma_guid_property: str = Field(
        "Object ID", description="Name (or identifier) of the property definition holding the GEMMA GUID."
    )
    authorization: SecretStr | None = Field(None, description="Authorization header for a URL (write-only).")


def map_record(d: Mapping[str, Any], organisatie: str, *, gemma: bool, guid_property: str) -> list[Change]:
    """The changes one record of :func:`ameff_records` stands for (raises RecordRejected)."""
    if "element" in d:
        if gemma:
            return [gemma_change(d["element"], d["name"], d["props"], guid_property)]
        return component_changes(organisatie, d["element"], d["name"], d["props"])
    return [
        relationship_change(
            organisatie,
            d["relationship"],
            d["kind"],
            d["directed"],
            tuple(d["source"]),
            tuple(d["target"]),
            d["props"],
        )
    ]


def ameff_records(model: AmeffModel, organisatie: str, gemma: bool) -> list[Record]:
    """One record per component and per relationship between components (or a voorziening)."""
    records: list[Record] = []
    ends: dict[str, tuple[str, str]] = {}
    for el in model.elements.values():
        props = model.named(el.properties)
        if el.type == "ApplicationComponent":
            records.append(Record({"element": el.identifier, "name": el.name, "props": props}))
            ends[el.identifier] = (applicatie_id(organisatie, el.identifier, props), "applicatie")
        elif props.get(KOPPELHUB_SOORT.casefold()) == VOORZIENING and el.name:
            ends[el.identifier] = (el.name, "voorziening")
    if gemma:
        return records
    for rel in model.relationships:
        source, target = ends.get(rel.source), ends.get(rel.target)
        if source and target and "applicatie" in (source[1], target[1]):
            records.append(
                Record(
                    {
                        "relationship": rel.identifier,
                        "kind": rel.type,
                        "directed": rel.is_directed,
                        "source": source,
                        "target": target,
                        "props": model.named(rel.properties),
                    }
                )
            )
    return records


@register
class AmeffConnector(Connector[AmeffConfig]):
    """Application components and their relationships from an AMEFF file."""

    name = "ameff"
    source = "ArchiMate exchange file (path or URL)"
    config_model = AmeffConfig

    @classmethod
    def records(cls, config: BaseModel) -> frozenset[str]:
        """As an AMEFF import: gebruik and koppelingen, or GEMMA referentiecomponenten."""
        gemma = isinstance(config, AmeffConfig) and config.gemma
        return frozenset({"referentiecomponent"} if gemma else {"gebruik", "koppeling"})

    def withdrawable_types(self) -> frozenset[str] | None:
        return frozenset({"referentiecomponent"} if self.config.gemma else {"gebruik", "koppeling"})

    async def fetch(self, checkpoint: Mapping[str, Any] | None) -> AsyncIterator[Batch]:
        local = await fetch_configured(self.config.location, self.config.authorization, self.context)
        try:
            mark = {"sha256": local.sha256, "complete": True}
            if checkpoint is not None and checkpoint.get("sha256") == local.sha256:
                yield Batch([], mark)  # the same file was imported already
                return
            model = await asyncio.to_thread(
                parse_ameff,
                local.path,
                max_bytes=self.context.max_bytes,
                max_elements=self.context.limits.max_xml_elements,
            )
            records = await asyncio.to_thread(
                ameff_records, model, self.context.organisatie, self.config.gemma
            )
            del model
            # In batches (the last one carries the checkpoint): a large model is mapped, published
            # and committed a batch at a time, not as one list of every event.
            size = self.batch_size
            for start in range(0, max(len(records) - size, 0), size):
                yield Batch(records[start : start + size])
            last = max(len(records) - size, 0)
            yield Batch(records[last:], mark, complete=True)
        finally:
            local.discard()

    def map(self, record: Record) -> list[Change]:
        cfg = self.config
        return map_record(
            record.data, self.context.organisatie, gemma=cfg.gemma, guid_property=cfg.gemma_guid_property
        )

    @classmethod
    def sample_config(cls, directory: Path) -> dict[str, Any]:
        path = directory / "landschap.xml"
        path.write_text(SAMPLE, encoding="utf-8")
        return {"location": str(path)}
