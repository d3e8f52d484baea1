"""A damaged or unusual xlsx file is refused with a reason a person can act on (``SourceRefused``),
never an unexpected exception (the import failed as "internal error: …" with a logged
traceback). The files are built here from a plain workbook, a part changed or dropped."""

from __future__ import annotations

import io
import re
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl import Workbook
from openpyxl.chart import BarChart

from connectors.base import SourceRefused
from connectors.tabular.reader import read_xlsx

SHEET = "xl/worksheets/sheet1.xml"
WORKBOOK = "xl/workbook.xml"
A2 = '<c r="A2" t="inlineStr"><is><t>a-1</t></is></c>'


def _plain() -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Blad1"
    sheet.append(["id", "naam"])
    sheet.append(["a-1", "Zaaksysteem"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _changed(
    parts: dict[str, Callable[[str], str]] | None = None,
    drop: tuple[str, ...] = (),
    method: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """The plain workbook with ``parts`` rewritten and ``drop`` left out."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(_plain())) as old, zipfile.ZipFile(out, "w", method) as new:
        for info in old.infolist():
            if info.filename in drop:
                continue
            data = old.read(info)
            change = (parts or {}).get(info.filename)
            new.writestr(info.filename, change(data.decode()).encode() if change else data)
    return out.getvalue()


def _headers(data: bytes) -> list[tuple[int, int]]:
    """``(offset, kind)`` of every local (1) and central directory (2) header of a zip."""
    return [
        (m.start(), 1 if m.group() == b"PK\x03\x04" else 2)
        for m in re.finditer(b"PK\x03\x04|PK\x01\x02", data)
    ]


def _encrypted() -> bytes:
    """Every entry flagged as encrypted (general purpose flag bit 0), as a zip tool writes it."""
    data = bytearray(_plain())
    for offset, kind in _headers(bytes(data)):
        data[offset + (6 if kind == 1 else 8)] |= 1
    return bytes(data)


def _central(field_offset: int, value: int) -> bytes:
    """Every central directory entry with the 2-byte field at ``field_offset`` set to ``value``."""
    data = bytearray(_plain())
    for offset, kind in _headers(bytes(data)):
        if kind == 2:
            data[offset + field_offset : offset + field_offset + 2] = struct.pack("<H", value)
    return bytes(data)


def _name_not_utf8() -> bytes:
    """The first part's name flagged as UTF-8 (flag bit 11) and starting with a byte UTF-8 has not."""
    data = bytearray(_plain())
    offset = next(o for o, kind in _headers(bytes(data)) if kind == 2)
    data[offset + 8 : offset + 10] = struct.pack("<H", 0x800)
    data[offset + 46] = 0xFF
    return bytes(data)


def _corrupt_sheet_stream() -> bytes:
    """The sheet's deflate stream starting with a block of the reserved type 3."""
    data = bytearray(_plain())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        start = z.getinfo(SHEET).header_offset
    name_length, extra_length = struct.unpack("<HH", data[start + 26 : start + 30])
    data[start + 30 + name_length + extra_length] = 0xFF
    return bytes(data)


def _with_chart_sheet(*, worksheet: bool = True) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "naam"])
    book.create_chartsheet("Grafiek").add_chart(BarChart())
    if not worksheet:
        book.remove(sheet)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


CASES: list[tuple[str, Callable[[], bytes], str | None, str]] = [
    (
        "sheet XML not well-formed",
        lambda: _changed({SHEET: lambda xml: xml.replace("</sheetData>", "</sheetDat>")}),
        None,
        r"sheet 'Blad1' is not well-formed XML .*save it again",
    ),
    (
        "workbook XML not well-formed",
        lambda: _changed({WORKBOOK: lambda xml: xml[:-20]}),
        None,
        r"part of the workbook is not well-formed XML .*save it again",
    ),
    (
        "no sheets listed",
        lambda: _changed({WORKBOOK: lambda xml: re.sub(r"<sheets>.*</sheets>", "<sheets/>", xml)}),
        None,
        "the workbook has no worksheets",
    ),
    ("the sheet's part missing", lambda: _changed(drop=(SHEET,)), None, "the workbook has no worksheets"),
    (
        "a shared string past the end of the list",
        lambda: _changed({SHEET: lambda xml: xml.replace(A2, '<c r="A2" t="s"><v>999</v></c>')}),
        None,
        r"sheet 'Blad1' has a cell that refers to a shared string the workbook does not have",
    ),
    (
        "a chart sheet named",
        _with_chart_sheet,
        "Grafiek",
        r"sheet 'Grafiek' is a chart, not a worksheet; the worksheets are \['Sheet'\]",
    ),
    (
        "only a chart sheet",
        lambda: _with_chart_sheet(worksheet=False),
        None,
        r"the workbook has no worksheets \(only the chart sheet\(s\) \['Grafiek'\]\)",
    ),
    ("entries flagged encrypted", _encrypted, None, "the file is encrypted: save it without a password"),
    (
        "AES encryption (method 99)",
        lambda: _central(10, 99),
        None,
        "the file is encrypted: save it without a password",
    ),
    (
        "an unknown compression method",
        lambda: _central(10, 7),
        None,
        r"compressed with method 7, which the hub cannot unpack: save the workbook again",
    ),
    (
        "a zip version past what zipfile reads",
        lambda: _central(6, 99),
        None,
        r"the file is not an xlsx workbook: zip file version 9\.9",
    ),
    (
        "a sheet entry without a name",
        lambda: _changed({WORKBOOK: lambda xml: xml.replace('name="Blad1" ', "")}),
        None,
        r"the workbook could not be read \(TypeError: .*save it again",
    ),
    (
        "a column without its first position",
        lambda: _changed(
            {SHEET: lambda xml: xml.replace("<sheetData>", '<cols><col max="1"/></cols><sheetData>')}
        ),
        None,
        r"sheet 'Blad1' could not be read \(KeyError: 'min'\).*save it again",
    ),
    (
        "a hyperlink without a cell",
        lambda: _changed(
            {
                SHEET: lambda xml: xml.replace(
                    "</sheetData>", "</sheetData><hyperlinks><hyperlink/></hyperlinks>"
                )
            }
        ),
        None,
        r"sheet 'Blad1' could not be read \(TypeError: .*save it again",
    ),
    (
        "a damaged deflate stream",
        _corrupt_sheet_stream,
        None,
        r"the workbook could not be read \(error: .*save it again",
    ),
    (
        "a part name not in the encoding its entry declares",
        _name_not_utf8,
        None,
        r"the file is not an xlsx workbook: 'utf-8' codec can't decode",
    ),
    (
        "an encrypted workbook or .xls (a compound file, not a zip)",
        lambda: bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504),
        None,
        r"an encrypted workbook or an old \.xls file.*without a password",
    ),
]


@pytest.mark.parametrize(("build", "sheet", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_damaged_workbook_is_refused_with_what_to_do(
    tmp_path: Path, build: Callable[[], bytes], sheet: str | None, reason: str
) -> None:
    path = tmp_path / "damaged.xlsx"
    path.write_bytes(build())

    with pytest.raises(SourceRefused, match=reason):
        list(read_xlsx(path, sheet))


def test_the_plain_workbook_the_cases_start_from_reads(tmp_path: Path) -> None:
    """So each refusal above is the change it names, not a broken builder."""
    plain, charted = tmp_path / "plain.xlsx", tmp_path / "charted.xlsx"
    plain.write_bytes(_changed())
    charted.write_bytes(_with_chart_sheet())

    assert list(read_xlsx(plain)) == [(1, ["id", "naam"]), (2, ["a-1", "Zaaksysteem"])]
    assert list(read_xlsx(charted)) == [(1, ["id", "naam"])]  # the first worksheet, not the chart
