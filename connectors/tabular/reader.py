"""Streaming readers for CSV and xlsx: rows as lists of strings, numbered as a spreadsheet does.

CSV: UTF-8 with or without BOM; the delimiter (``,`` or ``;``, as Dutch Excel writes) is
detected from the header line. xlsx: the first sheet or a named one, read with openpyxl's
read-only mode so memory stays flat whatever the file size, after :func:`check_xlsx` checked
the zip. Fully empty rows are skipped.

Both obey :class:`ImportLimits`: a row number above ``max_rows``, more than ``max_cells``
cells or a row longer than ``max_row_bytes`` as stored refuse the file, so one file can neither
hold a reader for long (an xlsx row numbered 200,000,000 stops at the cap, not after 200
million empty rows) nor make it hold more than one row. They are plain iterators: the
connector pulls them in a worker thread, never on the event loop.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Generator, Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast
from zipfile import BadZipFile

from connectors.base import ImportLimits, SourceRefused
from connectors.tabular.formulas import restore
from connectors.tabular.guard import check_xlsx

if TYPE_CHECKING:
    from openpyxl import Workbook
    from openpyxl.workbook.workbook import _WorksheetLike  # the stubs' type of book.worksheets

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


def read_csv(path: Path, delimiter: str | None = None, limits: ImportLimits | None = None) -> Generator[Row]:
    """Rows of a CSV file; the header is row 1."""
    lim = limits or ImportLimits()
    csv.field_size_limit(lim.max_row_bytes)  # a field is never longer than its row
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        try:
            lines = _Lines(text, lim.max_row_bytes)
            first = lines.first()
            sep = delimiter or detect_delimiter(first)
            counter = _Counter(lim, cumulative=True)
            cells, max_rows, max_cells = 0, lim.max_rows, lim.max_cells
            for number, row in enumerate(csv.reader(lines, delimiter=sep), start=1):
                lines.taken = 0
                cells += len(row)
                if number > max_rows or cells > max_cells:  # inline: this loop runs per row
                    counter.row(number, cells)
                joined = "".join(row)
                if joined.strip():  # not fully empty
                    if "'" in joined:  # a cell an export neutralised (connectors.tabular.formulas)
                        row = [restore(cell) for cell in row]
                    yield number, cast("list[str | None]", row)
        except UnicodeDecodeError as e:
            raise SourceRefused(f"the file is not UTF-8 text: {e.reason} at byte {e.start}") from e
        except csv.Error as e:
            raise SourceRefused(f"the file is not valid CSV: {e}") from e


class _Lines:
    """The lines of a text, none read past ``limit`` characters, and ``taken`` since the last row
    (a quoted cell may span lines): a row longer than the limit refuses the file."""

    def __init__(self, text: io.TextIOWrapper, limit: int) -> None:
        self.text, self.limit, self.taken = text, limit, 0
        self._first: str | None = None

    def _too_long(self) -> SourceRefused:
        return SourceRefused(
            f"a row is longer than {self.limit} characters "
            "(KOPPELHUB_CONNECTORS_IMPORT_MAX_ROW_BYTES); refused to protect the hub's memory"
        )

    def _read(self) -> str:
        line = self.text.readline(self.limit - self.taken + 1)
        self.taken += len(line)
        if self.taken > self.limit:
            raise self._too_long()
        return line

    def first(self) -> str:
        self._first = self._read()
        self.taken = 0
        return self._first

    def __iter__(self) -> Iterator[str]:
        if self._first:
            yield self._first
        readline, limit = self.text.readline, self.limit
        while line := readline(limit - self.taken + 1):  # _read, inline: this loop runs per line
            self.taken += len(line)
            if self.taken > limit:
                raise self._too_long()
            yield line


class _Counter:
    """Row numbers and cells against ``max_rows`` and ``max_cells``."""

    def __init__(self, limits: ImportLimits, *, cumulative: bool = False) -> None:
        self.limits, self.cells, self.cumulative = limits, 0, cumulative

    def row(self, number: int, width: int) -> None:
        """Count a row of ``width`` cells (``cumulative``: ``width`` is every cell so far)."""
        if number > self.limits.max_rows:
            raise SourceRefused(
                f"the file has rows past row {self.limits.max_rows}, the most an import reads "
                "(KOPPELHUB_CONNECTORS_IMPORT_MAX_ROWS); split the file"
            )
        self.cells = width if self.cumulative else self.cells + width
        if self.cells > self.limits.max_cells:
            raise SourceRefused(
                f"the file has more than {self.limits.max_cells} cells, the most an import reads "
                "(KOPPELHUB_CONNECTORS_IMPORT_MAX_CELLS); split the file"
            )


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


def read_xlsx(path: Path, sheet: str | None = None, limits: ImportLimits | None = None) -> Generator[Row]:
    """Rows of the first (or the named) worksheet of an xlsx workbook; the header is row 1.

    A workbook openpyxl cannot read (damaged XML or structure, a chart sheet named) is
    :class:`SourceRefused` with what to do."""
    lim = limits or ImportLimits()
    check_xlsx(path, lim)
    book = _open_workbook(path)
    try:
        ws = _worksheet(book, sheet)
        # Rows as the file has them: not padded to the size the sheet declares (a dimension of
        # A1:XFD1048576 would make every row 16,384 cells and add empty rows up to the millionth).
        ws.reset_dimensions()
        counter = _Counter(lim)
        for number, values in enumerate(_sheet_rows(ws), start=1):
            counter.row(number, len(values))
            cells = [cell_text(v) for v in values]
            if any(c is not None and c.strip() for c in cells):
                yield number, cells
    finally:
        book.close()


_SAVE_AGAIN: Final = "open it in your spreadsheet program and save it again"


def _open_workbook(path: Path) -> Workbook:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        return load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, BadZipFile, KeyError) as e:  # KeyError: a part it needs is missing
        raise SourceRefused(f"the file is not an xlsx workbook: {e}") from e
    except SyntaxError as e:  # xml.etree's ParseError and lxml's XMLSyntaxError both are one
        raise SourceRefused(f"a part of the workbook is not well-formed XML ({e}): {_SAVE_AGAIN}") from e
    # TypeError: openpyxl's check of an attribute; zlib.error, EOFError: a damaged part
    except (ValueError, TypeError, OSError, EOFError, zlib.error) as e:
        raise SourceRefused(f"the workbook could not be read ({_cause(e)}): {_SAVE_AGAIN}") from e


def _cause(error: Exception) -> str:
    """What went wrong: openpyxl wraps a ValueError in one naming the file's path on this host."""
    cause = error.__cause__ if isinstance(error.__cause__, Exception) else error
    return f"{type(cause).__name__}: {cause}"


def _worksheet(book: Workbook, sheet: str | None) -> _WorksheetLike:
    worksheets = book.worksheets  # read-only worksheets; the chart sheets are book.chartsheets
    if sheet is None:
        if not worksheets:
            charts = [c.title for c in book.chartsheets]
            only = f" (only the chart sheet(s) {charts})" if charts else ""
            raise SourceRefused(
                f"the workbook has no worksheets{only}: put the rows on a worksheet (if it has one, "
                f"the file is damaged: {_SAVE_AGAIN})"
            )
        return worksheets[0]
    for ws in worksheets:
        if ws.title == sheet:
            return ws
    names = [ws.title for ws in worksheets]
    if sheet in book.sheetnames:
        raise SourceRefused(f"sheet {sheet!r} is a chart, not a worksheet; the worksheets are {names}")
    raise SourceRefused(f"the workbook has no sheet {sheet!r}; it has {book.sheetnames}")


def _sheet_rows(ws: _WorksheetLike) -> Iterator[tuple[object, ...]]:
    """openpyxl's rows of ``ws``, the ways it fails on a damaged sheet refused with the reason."""
    rows = ws.iter_rows(values_only=True)
    while True:
        try:
            values = next(rows)
        except StopIteration:
            return
        except SyntaxError as e:  # xml.etree's ParseError
            raise SourceRefused(f"sheet {ws.title!r} is not well-formed XML ({e}): {_SAVE_AGAIN}") from e
        except IndexError as e:  # a cell's shared string is looked up by its number
            raise SourceRefused(
                f"sheet {ws.title!r} has a cell that refers to a shared string the workbook does not "
                f"have: {_SAVE_AGAIN}"
            ) from e
        # KeyError, TypeError: openpyxl's checks of an element; zlib.error, EOFError, BadZipFile:
        # a damaged part
        except (KeyError, TypeError, ValueError, BadZipFile, EOFError, zlib.error) as e:
            raise SourceRefused(f"sheet {ws.title!r} could not be read ({_cause(e)}): {_SAVE_AGAIN}") from e
        yield values


def read_rows(
    path: Path,
    *,
    excel: bool,
    sheet: str | None = None,
    delimiter: str | None = None,
    limits: ImportLimits | None = None,
) -> Generator[Row]:
    return read_xlsx(path, sheet, limits) if excel else read_csv(path, delimiter, limits)
