"""An xlsx file checked before openpyxl opens it, so a zip bomb or a sheet built to exhaust memory
is refused having inflated nothing, or one chunk past a limit.

0. The zip's end record, before :mod:`zipfile` reads the central directory (it lists every
   entry, ~500 bytes of memory each): at most ``max_entries`` (:data:`MAX_ENTRIES`) entries,
   and a directory no larger than that many entries take (zipfile reads the directory by its
   declared size, not its count, so the size bounds the work when the count lies).
1. The zip's central directory: the total inflated size of the parts may be at most
   ``max_unzipped_bytes``, and a part other than a worksheet (openpyxl reads shared strings,
   styles and the workbook whole) at most ``max_part_bytes``. The declared sizes can be trusted:
   :mod:`zipfile` never inflates a member past its declared size (more is a CRC error).
2. A part larger than ``max_row_bytes`` is streamed through expat (C, nothing kept) first.
   openpyxl's read-only mode streams a sheet too, but it holds one row element at a time and
   every element outside ``sheetData`` it does not know; so a row, and anything between two
   rows, may be at most ``max_row_bytes`` and :data:`MAX_UNIT_ELEMENTS` elements, everything
   outside ``sheetData`` together at most ``max_part_bytes``. A part smaller than a row needs no
   scan. A DTD (billion laughs) is refused.

A 208 KB file holding one 200 MB inline string is refused by (2) after inflating 4 MiB of it.

A part zipfile cannot unpack (encrypted, or an unknown compression method) is refused from the
directory too, with what to do, rather than failing half-way through openpyxl.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Final
from xml.parsers import expat

from connectors.base import ImportLimits, SourceRefused

__all__ = ["MAX_ENTRIES", "MAX_UNIT_ELEMENTS", "check_xlsx"]

#: Elements a row (or an element outside ``sheetData``) may have: 16,384 columns of 4 each.
MAX_UNIT_ELEMENTS: Final = 65_536
_CHUNK: Final = 64 * 1024
#: Zip entries a workbook may have: an xlsx has a few dozen parts (a few hundred with many images).
MAX_ENTRIES: Final = 10_000
#: Central directory bytes allowed per entry: a workbook's entries take 60-130.
_ENTRY_BYTES: Final = 128
#: Where the end record, as zipfile reads it, holds the entry count and the directory size.
_END_ENTRIES, _END_DIRECTORY_SIZE = 4, 5
#: The compression methods zipfile unpacks (Excel writes the first two).
_METHODS: Final = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
#: The method number of WinZip's AES encryption.
_AES: Final = 99
#: How an OLE compound file begins: an old .xls workbook, or an xlsx saved with a password
#: (Excel wraps the encrypted zip in one).
_COMPOUND_FILE: Final = bytes.fromhex("d0cf11e0a1b11ae1")
_ENCRYPTED: Final = "the file is encrypted: save it without a password"


class _NotASheet(Exception):
    """The part's root is not a worksheet: openpyxl reads it whole (or not at all)."""


class _SheetScan:
    """Expat handlers that track the units openpyxl holds at once: rows, and the elements
    besides ``sheetData``. ``mark`` is where the current unit (or gap between units) began."""

    def __init__(self, part: str, limits: ImportLimits) -> None:
        self.part, self.limits = part, limits
        self.parser = expat.ParserCreate(namespace_separator=" ")
        self.parser.StartElementHandler = self.start
        self.parser.EndElementHandler = self.end
        self.parser.StartDoctypeDeclHandler = self.doctype
        self.depth = 0
        self.in_data = False
        self.mark = 0
        self.elements = 0
        self.outside = 0
        self.unit_start = 0

    def refuse(self, what: str) -> SourceRefused:
        return SourceRefused(f"the xlsx part {self.part!r} {what}; refused to protect the hub's memory")

    def doctype(self, *_: object) -> None:
        raise self.refuse("declares a DTD, which a workbook never has")

    def boundary(self) -> None:
        self.mark = self.parser.CurrentByteIndex
        self.elements = 0

    def start(self, name: str, _attrs: object) -> None:
        self.depth += 1
        local = name.rpartition(" ")[2]
        if self.depth == 1:
            if local != "worksheet":
                raise _NotASheet
        elif self.depth == 2:
            self.boundary()
            self.unit_start = self.mark
            self.in_data = local == "sheetData"
        elif self.depth == 3 and self.in_data:
            if local != "row":
                raise self.refuse(f"holds <{local}> in sheetData, where only rows belong")
            self.boundary()
        else:
            self.elements += 1
            if self.elements > MAX_UNIT_ELEMENTS:
                raise self.refuse(f"has a row or element with more than {MAX_UNIT_ELEMENTS} elements")

    def end(self, _name: str) -> None:
        if self.depth == 2:
            if not self.in_data:
                self.outside += self.parser.CurrentByteIndex - self.unit_start
                if self.outside > self.limits.max_part_bytes:
                    raise self.refuse(
                        f"has more than {self.limits.max_part_bytes} bytes outside its rows "
                        "(KOPPELHUB_CONNECTORS_IMPORT_MAX_PART_BYTES)"
                    )
            self.in_data = False
            self.boundary()
        elif self.depth == 3 and self.in_data:
            self.boundary()
        self.depth -= 1

    def feed(self, chunk: bytes, fed: int) -> None:
        self.parser.Parse(chunk, not chunk)
        if fed - self.mark > self.limits.max_row_bytes:
            raise self.refuse(
                f"has a row (or an element between rows) of more than {self.limits.max_row_bytes} "
                "bytes (KOPPELHUB_CONNECTORS_IMPORT_MAX_ROW_BYTES)"
            )


def _scan(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ImportLimits) -> None:
    scan = _SheetScan(info.filename, limits)
    fed = 0
    try:
        with archive.open(info) as part:
            while True:
                chunk = part.read(_CHUNK)
                fed += len(chunk)
                scan.feed(chunk, fed)
                if not chunk:
                    return
    except _NotASheet:
        if info.file_size > limits.max_part_bytes:
            raise SourceRefused(
                f"the xlsx part {info.filename!r} is {info.file_size} bytes unzipped and is read whole; "
                f"the limit is {limits.max_part_bytes} (KOPPELHUB_CONNECTORS_IMPORT_MAX_PART_BYTES)"
            ) from None
    except expat.ExpatError as e:
        raise SourceRefused(f"the xlsx part {info.filename!r} is not well-formed XML: {e}") from e
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise SourceRefused(f"the file is not an xlsx workbook: {e}") from e


def _not_a_zip(path: Path, error: Exception) -> SourceRefused:
    with path.open("rb") as f:
        if f.read(len(_COMPOUND_FILE)) == _COMPOUND_FILE:
            return SourceRefused(
                "the file is an encrypted workbook or an old .xls file, not an xlsx workbook: "
                "save it as an Excel workbook (.xlsx) without a password"
            )
    return SourceRefused(f"the file is not an xlsx workbook: {error}")


def _check_unpackable(info: zipfile.ZipInfo) -> None:
    """Refuse a part zipfile would not unpack (it raises RuntimeError or NotImplementedError
    only when the part is opened, somewhere inside openpyxl)."""
    if info.flag_bits & 0x1 or info.compress_type == _AES:
        raise SourceRefused(_ENCRYPTED)
    if info.compress_type not in _METHODS:
        raise SourceRefused(
            f"the xlsx part {info.filename!r} is compressed with method {info.compress_type}, which the "
            "hub cannot unpack: save the workbook again from your spreadsheet program"
        )


def _check_directory(path: Path, max_entries: int) -> None:
    """Refuse a zip whose end record declares more than ``max_entries`` entries, or a central
    directory larger than they take; read with zipfile's own reader of that record, so these
    are the figures :class:`zipfile.ZipFile` then uses."""
    with path.open("rb") as f:
        end = zipfile._EndRecData(f)  # type: ignore[attr-defined]  # no public reader of the record
    if not end:
        return  # not a zip: zipfile.ZipFile says so
    entries, size = end[_END_ENTRIES], end[_END_DIRECTORY_SIZE]
    if entries > max_entries:
        raise SourceRefused(
            f"the file has {entries} zip entries; an xlsx workbook has a few dozen parts and an import "
            f"reads at most {max_entries}: save it again from your spreadsheet program, or as CSV"
        )
    if size > max_entries * _ENTRY_BYTES:
        raise SourceRefused(
            f"the file's zip directory is {size} bytes, more than a workbook of at most {max_entries} "
            "parts has: save it again from your spreadsheet program, or as CSV"
        )


def check_xlsx(path: Path, limits: ImportLimits, *, max_entries: int = MAX_ENTRIES) -> None:
    """:class:`SourceRefused` when ``path`` is not a zip, holds a part zipfile cannot unpack or
    breaks a limit (see the module doc)."""
    try:
        _check_directory(path, max_entries)
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise _not_a_zip(path, e) from e
    # NotImplementedError: a zip version zipfile does not read; UnicodeDecodeError: a part name
    # not in the encoding its entry declares.
    except (OSError, NotImplementedError, UnicodeDecodeError) as e:
        raise SourceRefused(f"the file is not an xlsx workbook: {e}") from e
    with archive:
        infos = archive.infolist()
        for info in infos:
            _check_unpackable(info)
        total = sum(i.file_size for i in infos)
        if total > limits.max_unzipped_bytes:
            raise SourceRefused(
                f"the workbook is {total} bytes unzipped; the limit is {limits.max_unzipped_bytes} "
                "(KOPPELHUB_CONNECTORS_IMPORT_MAX_UNZIPPED_BYTES); save large sheets as CSV"
            )
        for info in infos:
            if info.file_size > limits.max_row_bytes:
                _scan(archive, info, limits)
