"""CSV and xlsx files of landscape objects: import templates and the gebruik export.

The files have exactly the columns the import reads, so an export imports back unchanged
(except, in xlsx, characters XML cannot hold: :mod:`connectors.xmltext`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from connectors.landschap import Landschap
from connectors.tabular.columns import LIST_SEPARATOR, columns, example_row
from connectors.tabular.formulas import is_formula_like, neutralise
from connectors.xmltext import xml_text
from schemas.landscape import LandscapeObject

__all__ = [
    "CSV_MEDIA_TYPE",
    "XLSX_MEDIA_TYPE",
    "export_gebruik_csv",
    "export_gebruik_xlsx",
    "template_csv",
    "template_xlsx",
    "write_csv",
    "write_xlsx",
]


CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _cells(objecttype: str, obj: LandscapeObject) -> list[str]:
    dumped = obj.model_dump(mode="json")
    return [
        LIST_SEPARATOR.join(v) if isinstance(v := dumped.get(name), list) else "" if v is None else str(v)
        for name in columns(objecttype)
    ]


def _csv(rows: Iterable[list[str]]) -> bytes:
    """Formula-like cells prefixed with a quote (:mod:`connectors.tabular.formulas`)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([neutralise(cell) for cell in row] for row in rows)
    return ("\ufeff" + out.getvalue()).encode()  # the BOM makes Excel read UTF-8


def _xlsx(title: str, rows: Iterable[list[str]]) -> bytes:
    """Formula-like cells written as explicit string cells, never as formulas; characters an
    xlsx (XML) cannot hold written as U+FFFD (:func:`connectors.xmltext.xml_text`)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title)

    def cell(text: str) -> object:
        if text == "":
            return None
        text = xml_text(text)
        if not is_formula_like(text):
            return text
        written = WriteOnlyCell(sheet, value=text)
        written.data_type = "s"  # openpyxl typed a leading "=" as a formula ("f")
        return written

    for row in rows:
        sheet.append([cell(text) for text in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def write_csv(objecttype: str, objects: Iterable[LandscapeObject]) -> bytes:
    return _csv([columns(objecttype), *(_cells(objecttype, o) for o in objects)])


def write_xlsx(objecttype: str, objects: Iterable[LandscapeObject]) -> bytes:
    return _xlsx(objecttype, [columns(objecttype), *(_cells(objecttype, o) for o in objects)])


def template_csv(objecttype: str) -> bytes:
    """The header and one example row: what an import of ``objecttype`` reads."""
    return _csv([columns(objecttype), example_row(objecttype)])


def template_xlsx(objecttype: str) -> bytes:
    return _xlsx(objecttype, [columns(objecttype), example_row(objecttype)])


def export_gebruik_csv(landschap: Landschap) -> bytes:
    """The organisation's gebruik as CSV (``interneAantekening`` included: it is its own)."""
    return write_csv("gebruik", sorted(landschap.gebruik, key=lambda g: g.id))


def export_gebruik_xlsx(landschap: Landschap) -> bytes:
    return write_xlsx("gebruik", sorted(landschap.gebruik, key=lambda g: g.id))
