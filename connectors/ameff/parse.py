"""Safe, incremental reading of an AMEFF file into the parts the landscape needs.

defusedxml's expat parser forbids DTDs (so no internal entities: billion laughs is refused),
external entities and external references; nothing is fetched from the network. The file is
read incrementally and every XML element is dropped from the tree once read (the records it
makes are kept), so memory follows what the landscape keeps and, for every other element, a
hash of its identifier (about 80 bytes; see :class:`AmeffModel`): an element left in its
parent, even cleared, costs ~100 bytes more, and a 60 MB file of diagram nodes held gigabytes.
A file of more than ``max_elements`` XML elements, one ``element``/``relationship`` of more
than :data:`MAX_RECORD_ELEMENTS`, or XML elements nested more than :data:`MAX_DEPTH` deep (each
open ancestor stays in memory until it ends) is refused. A file that is not well-formed raises
:class:`SourceRefused` with line and column, before anything is published, since the whole
file is read before the first event is made.

``xsi:type`` is a QName: it is resolved with the namespace prefixes in scope, so
``xsi:type="am:ApplicationComponent"`` under ``xmlns:am="…archimate/3.0/"`` reads as
``xsi:type="ApplicationComponent"`` under the default namespace. A type in another namespace
is not an ArchiMate type. What cannot be read (no or a foreign type, a component or relationship
without an identifier, an identifier given twice) is kept in :attr:`AmeffModel.problems`, so
the import reports it instead of dropping it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import iterparse

from connectors.base import SourceRefused

__all__ = [
    "MAX_DEPTH",
    "MAX_PROBLEMS",
    "MAX_RECORD_ELEMENTS",
    "UNREADABLE",
    "AmeffElement",
    "AmeffModel",
    "AmeffRelationship",
    "duplicate",
    "parse_ameff",
]

_NS_PREFIX: Final = "{http://www.opengroup.org/xsd/archimate/"
_XSI_TYPE: Final = "{http://www.w3.org/2001/XMLSchema-instance}type"
#: Element types the landscape uses: application components, and nodes a koppeling may point at.
KEPT_ELEMENTS: Final = frozenset({"ApplicationComponent", "Node"})
KEPT_RELATIONSHIPS: Final = frozenset({"Flow", "Serving", "Triggering", "Association"})
#: XML elements one element, relationship or property definition may hold (its name,
#: documentation and properties are read from its subtree, so it is kept until it ends).
MAX_RECORD_ELEMENTS: Final = 10_000
#: How deep XML elements may nest. An exchange file nests about 10 deep (model, views, view,
#: nested diagram nodes); every open ancestor is held until it ends, so depth is memory.
MAX_DEPTH: Final = 64
#: Problems reported one by one; past them, only counted.
MAX_PROBLEMS: Final = 1_000
_RECORDS: Final = ("element", "relationship", "propertyDefinition")
#: Stands for the type of an element or relationship whose xsi:type is not an ArchiMate type.
UNREADABLE: Final = "?"
#: What the import reads, or might (an unreadable type may stand for a component).
_KEPT: Final = KEPT_ELEMENTS | KEPT_RELATIONSHIPS | {UNREADABLE}


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
    """What the import uses of a model; ``property_names`` maps definition ids to names.

    ``elements`` and ``relationships`` are the kept ones (the first with an identifier);
    ``types`` has the type of every identifier of a kind the import reads (:data:`UNREADABLE`
    when its xsi:type is no ArchiMate type) and ``others`` the hash of every other element's or
    relationship's, so that a relationship's end can be told apart from a typo (:meth:`has`):
    a 20 MB file of 200,000 groupings keeps 15.5 MB after the parse so, 34.5 MB with every
    identifier and its type (tracemalloc, 2026-12-02); ``duplicates`` are identifiers given to
    more than one of them where one is kept; ``problems`` are ``(where, message)`` of what could
    not be read, the
    first :data:`MAX_PROBLEMS` of them (``unreported`` counts the rest: a hostile file of a
    million unreadable elements must not cost a million messages)."""

    elements: dict[str, AmeffElement] = field(default_factory=dict)
    relationships: list[AmeffRelationship] = field(default_factory=list)
    property_names: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # every element/relationship type seen
    types: dict[str, str] = field(default_factory=dict)
    others: set[int] = field(default_factory=set)
    duplicates: set[str] = field(default_factory=set)
    problems: list[tuple[str, str]] = field(default_factory=list)
    unreported: int = 0

    def has(self, identifier: str) -> bool:
        """Whether the file has an element or relationship of this identifier."""
        return identifier in self.types or hash(identifier) in self.others

    def problem(self, where: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append((where, message))
        else:
            self.unreported += 1

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


class _Namespaces:
    """The namespace prefixes in scope while the file is read (iterparse ``start-ns``)."""

    def __init__(self) -> None:
        self.uris: dict[str, list[str]] = {}  # prefix ('' the default) -> URIs, innermost last
        self.declared: list[tuple[str, ...]] = []  # per open XML element, the prefixes it declared
        self.pending: tuple[str, ...] = ()  # declared by the XML element about to start

    def declare(self, prefix: str, uri: str) -> None:
        self.uris.setdefault(prefix, []).append(uri)
        self.pending += (prefix,)

    def open(self) -> None:
        self.declared.append(self.pending)  # mostly the one empty tuple: nothing to allocate
        self.pending = ()

    def close(self) -> None:
        for prefix in self.declared.pop():
            self.uris[prefix].pop()

    def resolve(self, qname: str) -> tuple[str | None, str]:
        """``(namespace URI, local name)`` of ``qname``; URI None for an undeclared prefix,
        '' for an unprefixed name without a default namespace."""
        prefix, _, local = qname.rpartition(":")
        uris = self.uris.get(prefix)
        if uris:
            return uris[-1], local
        return ("" if not prefix else None), local


def _parse(path: Path, max_elements: int) -> AmeffModel:
    model = AmeffModel()
    ns = ""
    scope = _Namespaces()
    stack: list[Element] = []
    record = 0  # depth of the element/relationship/propertyDefinition being read; 0: none
    inside = 0  # XML elements in it so far
    count = 0
    records: frozenset[str] = frozenset()
    with path.open("rb") as source:
        events = ("start", "end", "start-ns")
        for event, item in iterparse(source, events=events, forbid_dtd=True):
            if event == "start-ns":
                scope.declare(*item)
                continue
            elem: Element = item
            if event == "start":
                count += 1
                if count > max_elements:
                    raise SourceRefused(
                        f"the AMEFF file has more than {max_elements} XML elements "
                        "(KOPPELHUB_CONNECTORS_MAX_XML_ELEMENTS); refused to protect the hub's memory"
                    )
                if len(stack) >= MAX_DEPTH:
                    raise SourceRefused(
                        f"the file nests XML elements more than {MAX_DEPTH} deep; an ArchiMate "
                        "exchange file nests about 10: refused to protect the hub's memory"
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
                scope.open()
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
                scope.close()
                continue  # part of the record being read: read when it ends
            if depth == record:
                _read(model, ns, elem, scope)
                record = 0
            scope.close()
            if stack:
                # Read: drop it from the tree. Its earlier siblings went the same way, so it is
                # first among the few the parser has added since (it runs a chunk ahead).
                stack[-1].remove(elem)
    return model


def _type(elem: Element, ns: str, scope: _Namespaces) -> tuple[str, str | None]:
    """The ArchiMate type of an element or relationship, or :data:`UNREADABLE` and why."""
    qname = " ".join(elem.get(_XSI_TYPE, "").split())
    if not qname:
        return UNREADABLE, "has no xsi:type, so its ArchiMate type is unknown"
    uri, local = scope.resolve(qname)
    if uri is None:
        return UNREADABLE, f"xsi:type {qname!r} uses a namespace prefix that is not declared"
    # An unprefixed type without a default namespace is taken as ArchiMate's, as the file is.
    if uri and f"{{{uri}}}" != ns:
        return UNREADABLE, (
            f"xsi:type {qname!r} is in the namespace {uri!r}, not ArchiMate's ({ns[1:-1]}), "
            "so it is not an ArchiMate type"
        )
    return local, None


def _identify(model: AmeffModel, elem: Element, kind: str, where: str) -> str | None:
    """The identifier of an element or relationship of a kind the import reads, its type noted in
    ``model.types``; of any other kind only its hash is noted (``model.others``) and None is
    returned. None too when it has none, or when an earlier one has it too (then, where the
    import would read either, the identifier is a duplicate and this one a problem)."""
    identifier = elem.get("identifier")
    if not identifier:
        if kind in KEPT_ELEMENTS or kind in KEPT_RELATIONSHIPS:
            model.problem(where, f"has no identifier; the import needs one for every {kind}")
        return None
    earlier = model.types.get(identifier)
    if kind not in _KEPT:  # only whether it is there matters (see AmeffModel)
        if earlier is not None:  # a kept one has it already
            model.duplicates.add(identifier)
            model.problem(where, duplicate(identifier))
        else:
            model.others.add(hash(identifier))
        return None
    if earlier is None and hash(identifier) not in model.others:
        model.types[identifier] = kind
        return identifier
    model.duplicates.add(identifier)
    model.problem(where, duplicate(identifier))
    return None


def duplicate(identifier: str) -> str:
    """The problem of each element or relationship whose identifier another one has too."""
    return (
        f"the identifier {identifier!r} is given to more than one element or relationship; "
        "an identifier names one: none of them is imported"
    )


def _read(model: AmeffModel, ns: str, elem: Element, scope: _Namespaces) -> None:
    """Take what the landscape uses of one element, relationship or property definition."""
    tag = elem.tag
    if tag == f"{ns}element":
        kind, problem = _type(elem, ns, scope)
        model.counts[kind] = model.counts.get(kind, 0) + 1
        name = _text(elem, ns, "name") or ""
        where = f"element {elem.get('identifier') or repr(name)}"
        identifier = _identify(model, elem, kind, where)
        if problem is not None:
            model.problem(where, problem)
        elif kind in KEPT_ELEMENTS and identifier:
            model.elements[identifier] = AmeffElement(
                identifier, kind, name, _text(elem, ns, "documentation"), _properties(elem, ns)
            )
    elif tag == f"{ns}relationship":
        kind, problem = _type(elem, ns, scope)
        model.counts[kind] = model.counts.get(kind, 0) + 1
        src, dst = elem.get("source"), elem.get("target")
        where = f"relationship {elem.get('identifier') or f'from {src!r} to {dst!r}'}"
        ident = _identify(model, elem, kind, where)
        if problem is not None:
            model.problem(where, problem)
        elif kind in KEPT_RELATIONSHIPS and ident:
            if not (src and dst):
                missing = " and no ".join(a for a, v in (("source", src), ("target", dst)) if not v)
                model.problem(where, f"has no {missing}; a relationship of type {kind} needs both")
                return
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
        definition, label = elem.get("identifier"), _text(elem, ns, "name")
        if definition and label:
            model.property_names[definition] = label
