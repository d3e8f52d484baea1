"""A value no column takes (past the header's last column, or under a column without a name) is
a row error naming the row, and the row is not imported; it used to be dropped silently. Trailing
empty cells, which spreadsheets leave behind, are no value. Runs the import as the runner does
(``SyncRun`` over the csv and excel connectors) on the in-memory stores."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl import Workbook

from connectors.base import ConnectorContext
from connectors.kinds import KINDS  # noqa: F401 - registers every connector kind
from connectors.registry import create
from hub.adapters.memory import (
    InMemoryConnectorTables,
    InMemoryEventLog,
    InMemoryFingerprintStore,
    InMemoryImportStore,
)
from hub.ports.connectors import Owner, RowError, SyncScope
from hub.services.sync import SyncRun

ORG = "org-1"
SCOPE = SyncScope("urn:nld:oin:00000000000000000000:systeem:koppelhub:import:org-1", ORG, "import:org-1")
HEADER = ["id", "afnemer", "applicatie", "status"]


def _csv(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("".join(",".join(row) + "\r\n" for row in rows), encoding="utf-8")
    return path


def _xlsx(path: Path, rows: list[list[str]]) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)  # "" is written as an empty cell, which reads back as None
    book.save(path)
    return path


async def _import(path: Path, kind: str) -> tuple[list[bytes], list[RowError]]:
    """The keys published and the row errors of one import of ``path``."""
    tables = InMemoryConnectorTables()
    imports, log = InMemoryImportStore(tables), InMemoryEventLog()
    import_id = uuid.uuid4()
    await imports.create(
        import_id=import_id,
        organisatie=ORG,
        objecttype="gebruik",
        mode="incremental",
        filename=path.name,
        path=str(path),
        options={},
    )
    ctx = ConnectorContext(organisatie=ORG, scope=SCOPE.key, work_dir=path.parent, file_roots=(path.parent,))
    connector = create(kind, {"location": str(path), "objecttype": "gebruik"}, ctx)
    owner = Owner("import", import_id)
    await SyncRun(connector, SCOPE, owner, InMemoryFingerprintStore(tables), log).execute(None)
    keys = sorted(r.key or b"" for partition in log.partitions for r in partition)
    return keys, await imports.errors(import_id)


Write = Callable[[Path, list[list[str]]], Path]
FILES: list[tuple[str, Write, str]] = [("csv", _csv, "g.csv"), ("excel", _xlsx, "g.xlsx")]


@pytest.mark.parametrize(("kind", "write", "name"), FILES, ids=[f[0] for f in FILES])
async def test_a_value_past_the_headers_last_column_is_a_row_error_and_trailing_empty_cells_are_not(
    tmp_path: Path, kind: str, write: Write, name: str
) -> None:
    rows = [
        HEADER,
        ["g-1", ORG, "app-1", "In productie"],
        ["g-2", ORG, "app-2", "In productie", "oeps"],  # one value too many: row 3
        ["g-3", ORG, "app-3", "In productie", "", ""],  # a spreadsheet's trailing empty cells
        ["g-4", ORG, "app-4", "In productie", "", "", "nog een"],  # row 5, its 7th cell
    ]
    keys, errors = await _import(write(tmp_path / name, rows), kind)

    assert keys == [b"g-1", b"g-3"]
    assert [(e.row, e.message.split(":")[0]) for e in errors] == [
        (3, "the row has 5 cells, the header 4"),
        (5, "the row has 7 cells, the header 4"),
    ]


@pytest.mark.parametrize(("kind", "write", "name"), FILES, ids=[f[0] for f in FILES])
async def test_a_value_under_a_column_without_a_name_is_a_row_error(
    tmp_path: Path, kind: str, write: Write, name: str
) -> None:
    rows = [
        ["id", "afnemer", "", "applicatie", "status"],
        ["g-1", ORG, "", "app-1", "In productie"],
        ["g-2", ORG, "notitie", "app-2", "In productie"],  # row 3, under the nameless 3rd column
    ]
    keys, errors = await _import(write(tmp_path / name, rows), kind)

    assert keys == [b"g-1"]
    assert [(e.row, e.message.split(":")[0]) for e in errors] == [
        (3, "a value under a column without a name (column 3)")
    ]
