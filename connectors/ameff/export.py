"""An organisation's landscape as an AMEFF file that validates against the Open Group XSD.

Input: a :class:`connectors.landschap.Landschap`. Output: UTF-8 XML bytes with

- one ``ApplicationComponent`` per applicatie the gebruik rows and koppelingen reference, its
  fields as properties (``Koppelhub id``, ``aanbieder``, ``type``, ``licentietype``,
  ``referentiecomponenten``) plus the organisation's gebruik of it (``gebruiksstatus``,
  ``versie``, ``gebruik referentiecomponenten``; with several gebruik rows of one applicatie
  the first by id);
- one ``Node`` per buitengemeentelijke voorziening, marked ``Koppelhub soort``;
- one relationship per koppeling: ``Flow`` from the sending to the receiving side for
  ``AnaarB``/``BnaarA``, ``Association`` otherwise, with ``richting``, ``type``, ``status``,
  ``standaarden`` as properties.

:mod:`connectors.ameff.mapping` reads exactly these back, so an export imported into another
organisation gives the same applicaties and the same gebruik and koppelingen for it.
``interneAantekening`` stays private and is not exported. Characters XML 1.0 cannot hold
are written as U+FFFD (:mod:`connectors.xmltext`), so the file is well-formed whatever is stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Final
from xml.etree import ElementTree as ET

from connectors.ameff.mapping import KOPPELHUB_ID, KOPPELHUB_SOORT, UNKNOWN_DIRECTION, VOORZIENING
from connectors.ids import NAMESPACE
from connectors.landschap import Landschap
from connectors.tabular.columns import LIST_SEPARATOR
from connectors.xmltext import xml_text
from schemas.landscape import Applicatie, Gebruik

__all__ = ["ARCHIMATE_NS", "export_ameff"]

ARCHIMATE_NS: Final = "http://www.opengroup.org/xsd/archimate/3.0/"
_XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
_XML_LANG: Final = "{http://www.w3.org/XML/1998/namespace}lang"


def _ident(kind: str, key: str) -> str:
    return f"id-{uuid.uuid5(NAMESPACE, f'{kind}|{key}')}"


def _q(tag: str) -> str:
    return f"{{{ARCHIMATE_NS}}}{tag}"


class _Writer:
    def __init__(self) -> None:
        self.definitions: dict[str, str] = {}  # name -> identifier

    def text(self, parent: ET.Element, tag: str, value: str) -> None:
        ET.SubElement(parent, _q(tag), {_XML_LANG: "nl"}).text = xml_text(value)

    def properties(self, parent: ET.Element, values: Iterable[tuple[str, str | None]]) -> None:
        present = [(n, v) for n, v in values if v]
        if not present:
            return
        container = ET.SubElement(parent, _q("properties"))
        for name, value in present:
            ref = self.definitions.setdefault(name, f"propid-{len(self.definitions) + 1}")
            prop = ET.SubElement(container, _q("property"), {"propertyDefinitionRef": ref})
            self.text(prop, "value", str(value))


def _join(values: list[str]) -> str | None:
    return LIST_SEPARATOR.join(values) or None


def export_ameff(landschap: Landschap) -> bytes:
    """The landscape of ``landschap.organisatie`` as AMEFF XML (see the module docstring)."""
    ET.register_namespace("", ARCHIMATE_NS)
    ET.register_namespace("xsi", _XSI)
    w = _Writer()
    root = ET.Element(_q("model"), {"identifier": _ident("model", landschap.organisatie)})
    w.text(root, "name", f"Landschap van {landschap.organisatie}")
    elements = ET.SubElement(root, _q("elements"))
    relationships = ET.Element(_q("relationships"))

    apps = {a.id: a for a in landschap.applicaties}
    usage: dict[str, Gebruik] = {}
    for g in sorted(landschap.gebruik, key=lambda g: g.id):
        usage.setdefault(g.applicatie, g)
    wanted = list(
        dict.fromkeys(
            [g.applicatie for g in sorted(landschap.gebruik, key=lambda g: g.id)]
            + [x for k in landschap.koppelingen for x in (k.applicatieA, k.applicatieB) if x]
        )
    )
    for app_id in wanted:
        app = apps.get(app_id) or Applicatie(id=app_id, naam=app_id)
        el = ET.SubElement(
            elements,
            _q("element"),
            {"identifier": _ident("applicatie", app_id), f"{{{_XSI}}}type": "ApplicationComponent"},
        )
        w.text(el, "name", app.naam)
        use = usage.get(app_id)
        w.properties(
            el,
            [
                (KOPPELHUB_ID, app.id),
                ("aanbieder", app.aanbieder),
                ("type", app.type),
                ("licentietype", app.licentietype),
                ("referentiecomponenten", _join(app.referentiecomponenten)),
                ("gebruiksstatus", use.status if use else None),
                ("versie", use.versie if use else None),
                ("gebruik referentiecomponenten", _join(use.referentiecomponenten) if use else None),
            ],
        )
    voorzieningen = sorted({v for k in landschap.koppelingen if (v := k.buitengemeentelijkeVoorziening)})
    for name in voorzieningen:
        el = ET.SubElement(
            elements, _q("element"), {"identifier": _ident("voorziening", name), f"{{{_XSI}}}type": "Node"}
        )
        w.text(el, "name", name)
        w.properties(el, [(KOPPELHUB_SOORT, VOORZIENING)])

    for k in sorted(landschap.koppelingen, key=lambda k: k.id):
        a = _ident("applicatie", k.applicatieA)
        b = (
            _ident("applicatie", k.applicatieB)
            if k.applicatieB
            else _ident("voorziening", str(k.buitengemeentelijkeVoorziening))
        )
        kind = "Flow" if k.richting in ("AnaarB", "BnaarA") else "Association"
        source, target = (b, a) if k.richting == "BnaarA" else (a, b)
        rel = ET.SubElement(
            relationships,
            _q("relationship"),
            {
                "identifier": _ident("koppeling", k.id),
                "source": source,
                "target": target,
                f"{{{_XSI}}}type": kind,
            },
        )
        w.properties(
            rel,
            [
                (KOPPELHUB_ID, k.id),
                ("richting", k.richting or UNKNOWN_DIRECTION),
                ("type", k.type),
                ("status", k.status),
                ("standaarden", _join(k.standaarden)),
            ],
        )

    if len(elements) == 0:
        root.remove(elements)  # the XSD wants at least one element inside <elements>
    if len(relationships):
        root.append(relationships)
    if w.definitions:
        defs = ET.SubElement(root, _q("propertyDefinitions"))
        for name, ref in w.definitions.items():
            d = ET.SubElement(defs, _q("propertyDefinition"), {"identifier": ref, "type": "string"})
            w.text(d, "name", name)
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body
