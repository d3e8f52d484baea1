"""Connector kind ``ameff``: an ArchiMate exchange file becomes the organisation's landscape.

The whole file is parsed (safely, see :mod:`connectors.ameff.parse`) before the first record
is yielded, so a malformed or hostile file publishes nothing. By default a run is ``full``:
gebruik and koppelingen that disappeared from the file since the last run are withdrawn.
Applicaties are never withdrawn by an AMEFF import: other organisations may use them. What the
file has but the import cannot read is yielded as :class:`~connectors.base.Rejected` (a row
error naming the element or relationship), which keeps the run from withdrawing anything.
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
from connectors.ameff.parse import AmeffModel, AmeffRelationship, duplicate, parse_ameff
from connectors.base import Batch, Change, Connector, Record, Rejected
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


def ameff_records(model: AmeffModel, organisatie: str, gemma: bool) -> tuple[list[Record], list[Rejected]]:
    """One record per component and per relationship between components (or a voorziening),
    and, as :class:`Rejected`, what the import would read but cannot: what the parser could
    not read (:attr:`AmeffModel.problems`), a component whose identifier is not its own, a
    relationship to an identifier the model does not have. A model with elements of which
    none is read is rejected as a whole (a wrong file is far likelier than an empty landscape):
    a full run then withdraws nothing."""
    records: list[Record] = []
    rejected = [Rejected(None, [problem]) for problem in model.problems]
    if model.unreported:
        more = f"{model.unreported} more elements or relationships could not be read (as those above)"
        rejected.append(Rejected(None, [("model", more)]))
    ends: dict[str, tuple[str, str]] = {}
    for el in model.elements.values():
        if el.identifier in model.duplicates:
            rejected.append(Rejected(None, [(f"element {el.identifier}", duplicate(el.identifier))]))
            continue
        props = model.named(el.properties)
        if el.type == "ApplicationComponent":
            records.append(Record({"element": el.identifier, "name": el.name, "props": props}))
            ends[el.identifier] = (applicatie_id(organisatie, el.identifier, props), "applicatie")
        elif props.get(KOPPELHUB_SOORT.casefold()) == VOORZIENING and el.name:
            ends[el.identifier] = (el.name, "voorziening")
    if not gemma:
        for rel in model.relationships:
            problem = (
                duplicate(rel.identifier) if rel.identifier in model.duplicates else _dangling(model, rel)
            )
            if problem is not None:
                rejected.append(Rejected(None, [(f"relationship {rel.identifier}", problem)]))
                continue
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
    if not records and not rejected and model.counts:
        seen = ", ".join(f"{n} {kind}" for kind, n in sorted(model.counts.items()))
        problem = f"it has no ApplicationComponent, only {seen}: nothing to import; is it the right file?"
        rejected.append(Rejected(None, [("model", problem)]))
    return records, rejected


def _dangling(model: AmeffModel, rel: AmeffRelationship) -> str | None:
    """Why ``rel`` names no end the model has, if it does not."""
    for side, ref in (("source", rel.source), ("target", rel.target)):
        if ref in model.duplicates:
            return f"{side} {ref!r} names more than one element or relationship of the model"
        if not model.has(ref):
            return f"{side} {ref!r} is not an element of the model"
    return None


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
            records, rejected = await asyncio.to_thread(
                ameff_records, model, self.context.organisatie, self.config.gemma
            )
            del model
            # In batches (the last one carries the checkpoint): a large model is mapped, published
            # and committed a batch at a time, not as one list of every event. What could not be
            # read is reported as rejected items (row errors), which keeps a full run from
            # withdrawing what they may stand for.
            size = self.batch_size
            batches = [Batch(records[start : start + size]) for start in range(0, len(records), size)]
            batches += [
                Batch([], rejected=tuple(rejected[start : start + size]))
                for start in range(0, len(rejected), size)
            ]
            last = batches.pop() if batches else Batch([])
            for batch in batches:
                yield batch
            yield Batch(last.records, mark, complete=True, rejected=last.rejected)
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
