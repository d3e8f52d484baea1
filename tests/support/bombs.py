"""Hostile files made on the spot, small on disk: xlsx workbooks and AMEFF models built to stall or
exhaust a reader (issue 9, findings 5 and 6)."""

from __future__ import annotations

import io
import re
import struct
import zipfile
from pathlib import Path

from openpyxl import Workbook

from connectors.tabular.columns import columns

_SHEET = "xl/worksheets/sheet1.xml"


def workbook(path: Path, rows: list[list[str]], objecttype: str = "gebruik") -> Path:
    """A plain xlsx of ``objecttype`` columns and ``rows``."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(columns(objecttype))
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def _rezip(source: Path, target: Path, sheet: bytes | None, write_sheet: object = None) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            if info.filename != _SHEET:
                new.writestr(info, old.read(info))
            elif sheet is not None:
                new.writestr(_SHEET, sheet)
            else:
                assert callable(write_sheet)
                with new.open(_SHEET, "w", force_zip64=True) as out:
                    write_sheet(out, old.read(info))
    return target


def row_numbered(tmp: Path, number: int) -> Path:
    """A 5 KB workbook whose second row is numbered ``number`` (openpyxl pads the gap)."""
    plain = workbook(tmp / "plain.xlsx", [["g-1", "org-1", "app-1", "In productie", "1.0", "", ""]])
    with zipfile.ZipFile(plain) as z:
        xml = z.read(_SHEET).decode()
    xml = re.sub(r'<row r="2"', f'<row r="{number}"', xml)
    xml = re.sub(r'r="([A-Z]+)2"', lambda m: f'r="{m.group(1)}{number}"', xml)
    xml = re.sub(r'<dimension ref="[^"]*"/>', f'<dimension ref="A1:G{number}"/>', xml)
    return _rezip(plain, tmp / "row-bomb.xlsx", xml.encode())


def inline_string(tmp: Path, megabytes: int) -> Path:
    """A workbook whose second row holds one inline string of ``megabytes`` MB (tiny zipped)."""
    plain = workbook(tmp / "plain.xlsx", [["g-1", "org-1", "app-1", "In productie", "PLACEHOLDER", "", ""]])

    def write(out: io.BufferedIOBase, xml: bytes) -> None:
        head, _, tail = xml.partition(b"</sheetData>")
        out.write(head)
        out.write(b'<row r="3"><c r="A3" t="inlineStr"><is><t>')
        chunk = b"x" * (1 << 20)
        for _ in range(megabytes):
            out.write(chunk)
        out.write(b"</t></is></c></row></sheetData>" + tail)

    return _rezip(plain, tmp / "string-bomb.xlsx", None, write)


def ameff(path: Path, components: int, nodes: int) -> Path:
    """An AMEFF model: ``components`` application components with a property each, a flow between
    each pair of neighbours, and one view of ``nodes`` diagram nodes."""
    ns = "http://www.opengroup.org/xsd/archimate/3.0/"
    xsi = "http://www.w3.org/2001/XMLSchema-instance"
    with path.open("w", encoding="utf-8") as f:
        f.write(
            f'<?xml version="1.0" encoding="UTF-8"?>\n<model xmlns="{ns}" xmlns:xsi="{xsi}" identifier="m">'
        )
        f.write('<name xml:lang="nl">Groot</name><elements>')
        for i in range(components):
            f.write(
                f'<element identifier="id-{i}" xsi:type="ApplicationComponent">'
                f'<name xml:lang="nl">App {i}</name>'
                f'<properties><property propertyDefinitionRef="pd-1"><value>Gepland</value></property>'
                "</properties></element>"
            )
        f.write("</elements><relationships>")
        for i in range(components - 1):
            f.write(f'<relationship identifier="r-{i}" source="id-{i}" target="id-{i + 1}" xsi:type="Flow"/>')
        f.write('</relationships><propertyDefinitions><propertyDefinition identifier="pd-1" type="string">')
        f.write("<name>Status</name></propertyDefinition></propertyDefinitions><views><diagrams>")
        f.write('<view identifier="v-1" xsi:type="Diagram"><name>Alles</name>')
        for i in range(nodes):
            f.write(
                f'<node identifier="n-{i}" elementRef="id-{i % max(components, 1)}" xsi:type="Element" '
                f'x="{i % 1000}" y="{i // 1000}" w="120" h="55"/>'
            )
        f.write("</view></diagrams></views></model>")
    return path


def many_entries(path: Path, count: int) -> Path:
    """A zip of ``count`` empty entries (300,000 of them: 25.6 MB on disk; listing them cost the
    hub 152 MB and 4 s)."""
    with zipfile.ZipFile(path, "w") as z:
        for n in range(count):
            z.writestr(str(n), b"")
    return path


def declaring(
    source: Path, target: Path, *, entries: int | None = None, directory: int | None = None
) -> Path:
    """``source`` with its end-of-central-directory record declaring ``entries`` entries and a
    central directory of ``directory`` bytes, whatever the directory holds."""
    data = bytearray(source.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    if entries is not None:
        data[end + 8 : end + 12] = struct.pack("<HH", entries, entries)
    if directory is not None:
        data[end + 12 : end + 16] = struct.pack("<L", directory)
    target.write_bytes(bytes(data))
    return target
