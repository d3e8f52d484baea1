"""Safe, incremental reading of an AMEFF file into the parts the landscape needs.

defusedxml's expat parser forbids DTDs (so no internal entities: billion laughs is refused),
external entities and external references; nothing is fetched from the network. The file is
read incrementally and every XML element is dropped from the tree once read (the records it
makes are kept), so memory follows what the landscape keeps, not the file: an element left in
its parent, even cleared, costs ~100 bytes, and a 60 MB file of diagram nodes held gigabytes.
A file of more than ``max_elements`` XML elements, or one ``element``/``relationship`` of more
than :data:`MAX_RECORD_ELEMENTS`, is refused. A file that is not well-formed raises
:class:`SourceRefused` with line and column, before anything is published, since the whole
file is read before the first event is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import iterparse

from connectors.base import SourceRefused

__all__ = ["MAX_RECORD_ELEMENTS", "AmeffElement", "AmeffModel", "AmeffRelationship", "parse_ameff"]

_NS_PREFIX: Final = "{http://www.opengroup.org/xsd/archimate/"
_XSI_TYPE: Final = "{http://www.w3.org/2001/XMLSchema-instance}type"
#: Element types the landscape uses: application components, and nodes a koppeling may point at.
KEPT_ELEMENTS: Final = frozenset({"ApplicationComponent", "Node"})
KEPT_RELATIONSHIPS: Final = frozenset({"Flow", "Serving", "Triggering", "Association"})
#: XML elements one element, relationship or property definition may hold (its name,
#: documentation and properties are read from its subtree, so it is kept until it ends).
MAX_RECORD_ELEMENTS: Final = 10_000
_RECORDS: Final = ("element", "relationship", "propertyDefinition")


@dataclass
class AmeffElement:
    identifier: str
    type: str
    name: str
    documentation: str | None
    properties: dict[str, str] = field(default_factory=dict)  # propertyDefinitionRef -> value


@dataclass
class AmeffRelationship:
    identifier: str
    type: str
    source: str
    target: str
    is_directed: bool | None
    properties: dict[str, str] = field(default_factory=dict)


@dataclass
class AmeffModel:
    """What the import uses of a model; ``property_names`` maps definition ids to names."""

    elements: dict[str, AmeffElement] = field(default_factory=dict)
    relationships: list[AmeffRelationship] = field(default_factory=list)
    property_names: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # every element/relationship type seen

    def named(self, properties: dict[str, str]) -> dict[str, str]:
        """Properties keyed by their definition's name (case-folded) and by their ref id."""
        out = {ref.casefold(): value for ref, value in properties.items()}
        for ref, value in properties.items():
            name = self.property_names.get(ref)
            if name:
                out[name.casefold()] = value
        return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(parent: Element, ns: str, child: str) -> str | None:
    found = parent.find(f"{ns}{child}")
    if found is None:
        return None
    text = "".join(found.itertext()).strip()
    return text or None


def _properties(parent: Element, ns: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for prop in parent.iterfind(f"{ns}properties/{ns}property"):
        ref = prop.get("propertyDefinitionRef")
        value = _text(prop, ns, "value")
        if ref and value is not None:
            out[ref] = value
    return out


def parse_ameff(path: Path, *, max_bytes: int, max_elements: int = 5_000_000) -> AmeffModel:
    """Read ``path``; :class:`SourceRefused` for hostile, malformed or oversized files."""
    size = path.stat().st_size
    if size > max_bytes:
        raise SourceRefused(f"the AMEFF file is {size} bytes; the limit is {max_bytes}")
    try:
        return _parse(path, max_elements)
    except ParseError as e:
        line, column = getattr(e, "position", (0, 0))
        reason = str(e.msg).split(":")[0]
        raise SourceRefused(
            f"the file is not well-formed XML: {reason} at line {line}, column {column}"
        ) from e
    except DTDForbidden as e:
        raise SourceRefused(
            "the file declares a DTD (<!DOCTYPE …>); DTDs and entities are refused for safety "
            "(entity expansion such as 'billion laughs', external entities)"
        ) from e
    except (EntitiesForbidden, ExternalReferenceForbidden) as e:
        raise SourceRefused(
            f"the file declares entities or external references, which are refused: {e}"
        ) from e
    except DefusedXmlException as e:
        raise SourceRefused(f"the file was refused as unsafe XML: {e}") from e


def _parse(path: Path, max_elements: int) -> AmeffModel:
    model = AmeffModel()
    ns = ""
    stack: list[Element] = []
    record = 0  # depth of the element/relationship/propertyDefinition being read; 0: none
    inside = 0  # XML elements in it so far
    count = 0
    records: frozenset[str] = frozenset()
    with path.open("rb") as source:
        for event, elem in iterparse(source, events=("start", "end"), forbid_dtd=True):
            if event == "start":
                count += 1
                if count > max_elements:
                    raise SourceRefused(
                        f"the AMEFF file has more than {max_elements} XML elements "
                        "(KOPPELHUB_CONNECTORS_MAX_XML_ELEMENTS); refused to protect the hub's memory"
                    )
                if not ns:
                    if _local(elem.tag) != "model" or not elem.tag.startswith(_NS_PREFIX):
                        raise SourceRefused(
                            f"not an ArchiMate exchange file: the root is {elem.tag!r}, "
                            "expected <model> in http://www.opengroup.org/xsd/archimate/3.0/"
                        )
                    ns = elem.tag[: elem.tag.index("}") + 1]
                    records = frozenset(f"{ns}{name}" for name in _RECORDS)
                stack.append(elem)
                if record:
                    inside += 1
                    if inside > MAX_RECORD_ELEMENTS:
                        raise SourceRefused(
                            f"an AMEFF {_local(stack[record - 1].tag)} holds more than "
                            f"{MAX_RECORD_ELEMENTS} XML elements"
                        )
                elif elem.tag in records:
                    record, inside = len(stack), 0
                continue
            depth = len(stack)
            stack.pop()
            if record and depth > record:
                continue  # part of the record being read: read when it ends
            if depth == record:
                _read(model, ns, elem)
                record = 0
            if stack:
                # Read: drop it from the tree. Its earlier siblings went the same way, so it is
                # first among the few the parser has added since (it runs a chunk ahead).
                stack[-1].remove(elem)
    return model


def _read(model: AmeffModel, ns: str, elem: Element) -> None:
    """Take what the landscape uses of one element, relationship or property definition."""
    tag = elem.tag
    if tag == f"{ns}element":
        kind = _local(elem.get(_XSI_TYPE, ""))
        model.counts[kind] = model.counts.get(kind, 0) + 1
        identifier = elem.get("identifier")
        if kind in KEPT_ELEMENTS and identifier:
            model.elements[identifier] = AmeffElement(
                identifier,
                kind,
                _text(elem, ns, "name") or "",
                _text(elem, ns, "documentation"),
                _properties(elem, ns),
            )
    elif tag == f"{ns}relationship":
        kind = _local(elem.get(_XSI_TYPE, ""))
        model.counts[kind] = model.counts.get(kind, 0) + 1
        ident, src, dst = elem.get("identifier"), elem.get("source"), elem.get("target")
        if kind in KEPT_RELATIONSHIPS and ident and src and dst:
            directed = elem.get("isDirected")
            model.relationships.append(
                AmeffRelationship(
                    ident,
                    kind,
                    src,
                    dst,
                    None if directed is None else directed.strip().lower() == "true",
                    _properties(elem, ns),
                )
            )
    elif tag == f"{ns}propertyDefinition":
        ident, name = elem.get("identifier"), _text(elem, ns, "name")
        if ident and name:
            model.property_names[ident] = name
