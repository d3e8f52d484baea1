"""Spreadsheet columns ↔ landscape objects: columns are the model's field names, list fields
are separated by ``|``, an empty cell is an absent value. A value no column takes (past the
header's last name, or under a column without a name) makes its row invalid rather than being
dropped; trailing empty cells, which spreadsheets leave behind, are no value.

The importing organisation fills the ownership fields a row leaves empty (``afnemer`` of a
gebruik, ``organisatie`` of a koppeling); a gebruik of another afnemer is refused, since an
organisation manages only its own usage (DOMAIN.md §1).
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any, Final

from pydantic import ValidationError

from connectors.base import RecordRejected, SourceRefused
from schemas.landscape import (
    OBJECT_TYPES,
    LandscapeDataError,
    LandscapeObject,
    validate_landscape_data,
    vastgelegd_type,
)

__all__ = [
    "LIST_SEPARATOR",
    "Plan",
    "Shape",
    "column_plan",
    "columns",
    "example_row",
    "header_index",
    "header_shape",
    "list_fields",
    "row_object",
]

LIST_SEPARATOR: Final = "|"
#: Per column of a header: ``(name, position, is a list field)`` (:func:`column_plan`).
Plan = tuple[tuple[str, int, bool], ...]
#: A header's cells up to its last name, and the positions before that without one (:func:`header_shape`).
Shape = tuple[int, tuple[int, ...]]
_OWNER_FIELD: Final = {"gebruik": "afnemer", "koppeling": "organisatie"}


def columns(objecttype: str) -> list[str]:
    """The columns of a file of ``objecttype``, in model order."""
    return list(OBJECT_TYPES[objecttype].model_fields)


def list_fields(objecttype: str) -> frozenset[str]:
    model = OBJECT_TYPES[objecttype]
    return frozenset(
        name for name, info in model.model_fields.items() if typing.get_origin(info.annotation) is list
    )


def header_index(objecttype: str, header: Sequence[str | None]) -> dict[str, int]:
    """Column name → position; refuses unknown, duplicate or missing required columns."""
    known = columns(objecttype)
    names = [(h or "").strip() for h in header]
    # Positions, not names: the file may come from a URL, and an error that quoted its first
    # line would read back any page the hub can reach (the run's error is shown to the caller).
    unknown = [str(i) for i, n in enumerate(names, start=1) if n and n not in known]
    if unknown:
        raise SourceRefused(
            f"the header has {len(unknown)} unknown column(s), at position(s) {', '.join(unknown)}, "
            f"for {objecttype}; the columns are {known} "
            "(download the template: /api/v1/imports/templates/" + objecttype + ".csv)"
        )
    duplicates = sorted({n for n in names if n and names.count(n) > 1})
    if duplicates:
        raise SourceRefused(f"column(s) {duplicates} appear more than once in the header")
    index = {n: i for i, n in enumerate(names) if n}
    required = [
        n
        for n, info in OBJECT_TYPES[objecttype].model_fields.items()
        if info.is_required() and n not in index and n != _OWNER_FIELD.get(objecttype)
    ]
    if required:
        raise SourceRefused(f"the header lacks the required column(s) {required} for {objecttype}")
    return index


def row_object(
    objecttype: str,
    index: dict[str, int],
    lists: frozenset[str],
    cells: Sequence[str | None],
    organisatie: str,
    *,
    max_cell_bytes: int | None = None,
    plan: Plan | None = None,
    shape: Shape | None = None,
) -> LandscapeObject:
    """The object one row stands for; :class:`RecordRejected` naming each bad column (a cell of
    more than ``max_cell_bytes`` UTF-8 bytes is one) and each value no column takes.

    Runs once per row of an import (a million rows: every microsecond here is a second), so the
    columns are walked from a ``plan`` and the header's ``shape`` made once per file
    (:func:`column_plan`, :func:`header_shape`; made here when not given) and the model's
    validator is called directly; a row it refuses is validated again the documented way
    (:func:`~schemas.landscape.validate_landscape_data`), which words the problems."""
    data: dict[str, Any] = {}
    problems: list[tuple[str, str]] | None = None  # values no column takes, cells too large
    width = len(cells)
    named, unnamed = shape if shape is not None else header_shape(index)
    if width > named or unnamed:  # else every cell is under a named column
        problems = _stray_values(cells, named, unnamed)
    # A cell of at most max_cell_bytes / 4 characters cannot exceed max_cell_bytes in UTF-8.
    quarter = max_cell_bytes // 4 if max_cell_bytes is not None else None
    for name, position, is_list in plan if plan is not None else column_plan(index, lists):
        value = cells[position] if position < width else None
        if not value:
            continue
        text = value.strip()
        if not text:
            continue
        if quarter is not None and len(text) > quarter:
            problem = _cell_too_large(name, text, max_cell_bytes)
            if problem is not None:
                problems = [*(problems or []), problem]
                continue
        if is_list:
            data[name] = [part for raw in text.split(LIST_SEPARATOR) if (part := raw.strip())]
        else:
            data[name] = text
    if problems:
        raise RecordRejected(problems)
    owner = _OWNER_FIELD.get(objecttype)
    if owner is not None:
        data.setdefault(owner, organisatie)
        if objecttype == "gebruik" and data[owner] != organisatie:
            raise RecordRejected(
                [(owner, f"must be the importing organisatie {organisatie!r} (got {data[owner]!r})")]
            )
    model_type = OBJECT_TYPES[objecttype]
    try:
        model = model_type.__pydantic_validator__.validate_python(data)
    except ValidationError:
        model = _validated_or_rejected(objecttype, data)
    assert isinstance(model, LandscapeObject)
    return model


def header_shape(index: dict[str, int]) -> Shape:
    """How many cells a header spans up to its last named column, and the positions before that
    without a name: where :func:`row_object` looks for values no column takes."""
    named = max(index.values(), default=-1) + 1
    taken = set(index.values())
    return named, tuple(p for p in range(named) if p not in taken)


def _stray_values(
    cells: Sequence[str | None], named: int, unnamed: tuple[int, ...]
) -> list[tuple[str, str]] | None:
    """The problems of a row with values no column takes (None: it has none)."""
    problems: list[tuple[str, str]] = []
    last = len(cells)
    while last > named and not (cells[last - 1] or "").strip():
        last -= 1  # trailing empty cells are no value
    if last > named:
        problems.append(
            (
                "",
                f"the row has {last} cells, the header {named}: a value past the header's last column "
                "is not imported; remove it, or quote a value that holds the delimiter",
            )
        )
    blank = [str(p + 1) for p in unnamed if p < len(cells) and (cells[p] or "").strip()]
    if blank:
        problems.append(
            (
                "",
                f"a value under a column without a name (column {', '.join(blank)}): "
                "name the column in the header, or remove the value",
            )
        )
    return problems or None


def column_plan(index: dict[str, int], lists: frozenset[str]) -> Plan:
    """``(column name, position, is a list field)`` per column of a header: what
    :func:`row_object` walks for every row of a file."""
    return tuple((name, position, name in lists) for name, position in index.items())


def _cell_too_large(name: str, text: str, max_cell_bytes: int | None) -> tuple[str, str] | None:
    assert max_cell_bytes is not None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size <= max_cell_bytes:
        return None
    return (
        name,
        f"is {size} bytes; a cell may hold at most {max_cell_bytes} bytes "
        "(KOPPELHUB_CONNECTORS_IMPORT_MAX_CELL_BYTES)",
    )


def _validated_or_rejected(objecttype: str, data: dict[str, Any]) -> LandscapeObject:
    """The documented validation of landscape data, whose problems name each bad column."""
    try:
        model = validate_landscape_data(vastgelegd_type(objecttype), data)
    except LandscapeDataError as e:
        raise RecordRejected(
            [(field.removeprefix("data.").split("[")[0], message) for field, message in e.problems]
        ) from e
    assert isinstance(model, LandscapeObject)
    return model


def example_row(objecttype: str) -> list[str]:
    """A filled-in example row for templates, from the model's JSON Schema example."""
    extra = OBJECT_TYPES[objecttype].model_config.get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    first = examples[0] if isinstance(examples, list) and examples else None
    example: dict[str, Any] = first if isinstance(first, dict) else {}
    row = []
    for name in columns(objecttype):
        value = example.get(name)
        row.append(
            LIST_SEPARATOR.join(value) if isinstance(value, list) else "" if value is None else str(value)
        )
    return row
