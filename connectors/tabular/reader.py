"""Streaming readers for CSV and xlsx: rows as lists of strings, numbered as a spreadsheet does.

CSV: UTF-8 with or without BOM; the delimiter (``,`` or ``;``, as Dutch Excel writes) is
detected from the header line. xlsx: the first sheet or a named one, read with openpyxl's
read-only mode so memory stays flat whatever the file size. Fully empty rows are skipped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import cast

from connectors.base import SourceRefused

__all__ = ["Row", "cell_text", "detect_delimiter", "read_csv", "read_rows", "read_xlsx"]

Row = tuple[int, list[str | None]]


def detect_delimiter(header: str) -> str:
    """``;`` when the header line has more semicolons than commas (outside quotes), else ``,``."""
    outside, quoted = [], False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        elif not quoted:
            outside.append(ch)
    text = "".join(outside)
    return ";" if text.count(";") > text.count(",") else ","


def read_csv(path: Path, delimiter: str | None = None) -> Iterator[Row]:
    """Rows of a CSV file; the header is row 1."""
    csv.field_size_limit(1 << 20)
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        try:
            first = text.readline()
            sep = delimiter or detect_delimiter(first)
            rows = csv.reader(_chain(first, text), delimiter=sep)
            for number, row in enumerate(rows, start=1):
                if "".join(row).strip():  # not fully empty
                    yield number, cast("list[str | None]", row)
        except UnicodeDecodeError as e:
            raise SourceRefused(f"the file is not UTF-8 text: {e.reason} at byte {e.start}") from e
        except csv.Error as e:
            raise SourceRefused(f"the file is not valid CSV: {e}") from e


def _chain(first: str, rest: io.TextIOWrapper) -> Iterator[str]:
    yield first
    yield from rest


def cell_text(value: object) -> str | None:
    """An xlsx cell as text: whole numbers without ``.0``, dates as ISO 8601."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def read_xlsx(path: Path, sheet: str | None = None) -> Iterator[Row]:
    """Rows of the first (or the named) sheet of an xlsx workbook; the header is row 1."""
    from zipfile import BadZipFile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, BadZipFile, OSError, KeyError, ValueError) as e:
        raise SourceRefused(f"the file is not an xlsx workbook: {e}") from e
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise SourceRefused(f"the workbook has no sheet {sheet!r}; it has {book.sheetnames}")
        ws = book[sheet] if sheet is not None else book.worksheets[0]
        for number, values in enumerate(ws.iter_rows(values_only=True), start=1):
            cells = [cell_text(v) for v in values]
            if any(c is not None and c.strip() for c in cells):
                yield number, cells
    finally:
        book.close()


def read_rows(
    path: Path, *, excel: bool, sheet: str | None = None, delimiter: str | None = None
) -> Iterator[Row]:
    return read_xlsx(path, sheet) if excel else read_csv(path, delimiter)
