"""Cells that cannot attack the person who opens an export (OWASP "CSV injection").

A spreadsheet program runs a CSV cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in
some, tab or carriage return) as a formula: ``=HYPERLINK(...)`` in a name someone published
becomes a live link, or worse, in the reader's Excel. A CSV export therefore prefixes such a
cell with a single quote, which spreadsheets show as text; a cell that already starts with a
quote gets one more, so the prefix is reversible and :func:`restore` (applied by the CSV
reader) gives back exactly what was exported: an export still imports back unchanged.

xlsx needs no prefix: there the export writes these cells as explicit string cells, which no
spreadsheet evaluates (openpyxl would otherwise make every string starting with ``=`` a formula).
"""

from __future__ import annotations

from typing import Final

__all__ = ["FORMULA_STARTS", "is_formula_like", "neutralise", "restore"]

FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_ESCAPED: Final = (*FORMULA_STARTS, "'")


def is_formula_like(cell: str) -> bool:
    """True when a spreadsheet could read ``cell`` as a formula."""
    return cell.startswith(FORMULA_STARTS)


def neutralise(cell: str) -> str:
    """``cell`` as a CSV export writes it: a quote before a formula-like cell (or a quoted one)."""
    return "'" + cell if cell.startswith(_ESCAPED) else cell


def restore(cell: str) -> str:
    """The inverse of :func:`neutralise`: ``restore(neutralise(c)) == c`` for every ``c``.

    A quote is removed only before a formula start or another quote, so ``'t Hooft`` as a person
    typed it reads as typed.
    """
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_ESCAPED) else cell
