"""Issue 9, findings 5 and 6: one file must neither stall the hub's event loop nor exhaust its
memory, and no row may become an event a publish would refuse. The hostile files are built here
(tests/support/bombs.py), small on disk."""

from __future__ import annotations

import asyncio
import csv
import multiprocessing
import threading
import tracemalloc
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from connectors.ameff.parse import MAX_DEPTH, parse_ameff
from connectors.base import ConnectorContext, ImportLimits, SourceRefused
from connectors.kinds import KINDS  # noqa: F401 - registers every connector kind
from connectors.registry import create
from connectors.tabular.guard import check_xlsx
from connectors.tabular.reader import read_rows
from hub.ports.connectors import BatchCommit, Fingerprint, Key, Owner, RowError, SyncScope
from hub.services.sync import SyncRun
from schemas import CloudEvent
from schemas.bindings import KafkaRecord, to_kafka_record
from tests.support import bombs

ORG = "org-1"
SCOPE = SyncScope("urn:nld:oin:00000000000000000000:systeem:koppelhub:import:org-1", ORG, "import:org-1")


def test_an_xlsx_row_numbered_200_million_is_refused_at_that_row_without_reading_the_gap(
    tmp_path: Path,
) -> None:
    """openpyxl used to pad the sheet with empty rows up to its declared size (63 s of a frozen
    hub for a 4.7 KB file); now the reader refuses the row by its number, having read next to
    nothing before it."""
    path = bombs.row_numbered(tmp_path, 200_000_000)
    assert path.stat().st_size < 10_000
    read: list[object] = []
    with pytest.raises(SourceRefused, match="KOPPELHUB_CONNECTORS_IMPORT_MAX_ROWS"):
        for row in read_rows(path, excel=True):
            read.append(row)
    assert len(read) <= 2, f"{len(read)} rows were read before the refusal"


def test_an_xlsx_with_a_huge_inline_string_is_refused_without_inflating_it(tmp_path: Path) -> None:
    path = bombs.inline_string(tmp_path, megabytes=100)
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(SourceRefused, match="KOPPELHUB_CONNECTORS_IMPORT_MAX_ROW_BYTES"):
            list(read_rows(path, excel=True))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024  # the string alone is 100 MB


def test_an_xlsx_over_the_unzipped_limit_is_refused_from_its_directory(tmp_path: Path) -> None:
    path = bombs.inline_string(tmp_path, megabytes=3)
    limits = ImportLimits(max_unzipped_bytes=2 * 1024 * 1024)
    with pytest.raises(SourceRefused, match="KOPPELHUB_CONNECTORS_IMPORT_MAX_UNZIPPED_BYTES"):
        list(read_rows(path, excel=True, limits=limits))


def test_an_xlsx_with_more_zip_entries_than_a_workbook_has_is_refused(tmp_path: Path) -> None:
    """Listing 300,000 empty entries (a 25.6 MB file) cost 152 MB and 4 s before any check."""
    with pytest.raises(SourceRefused, match=r"51 zip entries; .* at most 50"):
        check_xlsx(bombs.many_entries(tmp_path / "51.xlsx", 51), ImportLimits(), max_entries=50)
    check_xlsx(bombs.many_entries(tmp_path / "50.xlsx", 50), ImportLimits(), max_entries=50)


def test_the_entry_count_is_read_from_the_end_record_before_the_directory(tmp_path: Path) -> None:
    """A small workbook whose end record declares 20,000 entries: refused at the default limit,
    from the record alone (its directory holds a dozen)."""
    plain = bombs.workbook(tmp_path / "plain.xlsx", [["g-1", ORG, "app-1", "In productie", "", "", ""]])
    path = bombs.declaring(plain, tmp_path / "declared.xlsx", entries=20_000)
    with pytest.raises(SourceRefused, match=r"20000 zip entries; .* at most 10000"):
        list(read_rows(path, excel=True))


def test_a_directory_larger_than_its_declared_entries_allow_is_refused(tmp_path: Path) -> None:
    """zipfile reads the central directory by its declared size, not its count: an end record
    that understates the count does not let a large directory through."""
    many = bombs.many_entries(tmp_path / "many.xlsx", 200)
    path = bombs.declaring(many, tmp_path / "understated.xlsx", entries=1)
    with pytest.raises(SourceRefused, match=r"zip directory is \d+ bytes"):
        check_xlsx(path, ImportLimits(), max_entries=50)


def test_a_csv_row_longer_than_the_row_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("id;afnemer;applicatie;status\n" + "g-1;org-1;app;" + "x" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(SourceRefused, match="KOPPELHUB_CONNECTORS_IMPORT_MAX_ROW_BYTES"):
        list(read_rows(path, excel=False, limits=ImportLimits(max_row_bytes=4096)))


def test_a_file_with_more_cells_than_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("id;afnemer\n" + "g;o\n" * 100, encoding="utf-8")
    with pytest.raises(SourceRefused, match="KOPPELHUB_CONNECTORS_IMPORT_MAX_CELLS"):
        list(read_rows(path, excel=False, limits=ImportLimits(max_cells=150)))


class MemoryStore:
    def __init__(self) -> None:
        self.prints: dict[Key, Fingerprint] = {}
        self.errors: list[RowError] = []

    async def known(self, scope: SyncScope, keys: Sequence[Key]) -> dict[Key, Fingerprint]:
        return {k: self.prints[k] for k in keys if k in self.prints}

    async def commit(self, scope: SyncScope, owner: Owner, batch: BatchCommit) -> None:
        self.errors += batch.errors
        for p in batch.published:
            self.prints[(p.objecttype, p.object_id)] = Fingerprint(p.hash, p.generation)

    async def unseen(self, *args: Any, **kwargs: Any) -> list[tuple[Key, int]]:
        return []


class MemoryLog:
    def __init__(self) -> None:
        self.records: list[KafkaRecord] = []

    async def publish(self, events: Sequence[CloudEvent]) -> None:
        self.records += [to_kafka_record(e) for e in events]

    async def publish_records(self, records: Sequence[KafkaRecord]) -> None:
        self.records += records


def _context(tmp_path: Path, limits: ImportLimits | None = None) -> ConnectorContext:
    return ConnectorContext(
        organisatie=ORG,
        scope="import:org-1",
        work_dir=tmp_path,
        file_roots=(tmp_path,),
        limits=limits or ImportLimits(),
    )


def _gebruik_csv(path: Path, versies: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(["id", "afnemer", "applicatie", "status", "versie"])
        for i, versie in enumerate(versies):
            w.writerow([f"g-{i}", ORG, "app-1", "In productie", versie])
    return path


async def _import(path: Path, tmp_path: Path, limits: ImportLimits | None, max_event: int) -> tuple[Any, ...]:
    connector = create("csv", {"location": str(path), "objecttype": "gebruik"}, _context(tmp_path, limits))
    store, log = MemoryStore(), MemoryLog()
    run = SyncRun(connector, SCOPE, Owner("import", uuid.uuid4()), store, log, max_event_bytes=max_event)
    tally = await run.execute(None)
    return tally, store, log


async def test_a_row_whose_event_exceeds_the_event_limit_is_a_row_error(tmp_path: Path) -> None:
    path = _gebruik_csv(tmp_path / "g.csv", ["1.0", "y" * 5000, "2.0"])
    tally, store, log = await _import(path, tmp_path, None, max_event=4096)
    assert (tally.published, tally.invalid) == (2, 1)
    [error] = store.errors
    assert error.row == 3  # the header is row 1
    assert "KOPPELHUB_MAX_EVENT_BYTES" in error.message and "4096" in error.message
    assert [r.key for r in log.records] == [b"g-0", b"g-2"]


async def test_a_cell_over_the_cell_limit_is_a_row_error_naming_its_column(tmp_path: Path) -> None:
    path = _gebruik_csv(tmp_path / "g.csv", ["1.0", "é" * 600])
    tally, store, _ = await _import(path, tmp_path, ImportLimits(max_cell_bytes=1000), max_event=1 << 20)
    assert (tally.published, tally.invalid) == (1, 1)
    [error] = store.errors
    assert (error.row, error.column) == (3, "versie")
    assert "1200 bytes" in error.message and "KOPPELHUB_CONNECTORS_IMPORT_MAX_CELL_BYTES" in error.message


async def test_a_large_workbook_is_read_off_the_event_loop_which_keeps_turning(tmp_path: Path) -> None:
    """The whole import as the runner runs it (reading in a thread, mapping in the worker
    process): no row is read on the event loop's thread, which the API, projector and dispatcher
    share, and the loop keeps turning between batches. (How long it may pause is a figure, not a
    test: ``python -m benchmarks.healthz_stall``.)"""
    rows = [
        [f"g-{i}", ORG, f"app-{i % 50}", "In productie", f"1.{i}", "rc-1|rc-2", ""] for i in range(20_000)
    ]
    path = bombs.workbook(tmp_path / "big.xlsx", rows)
    connector = create("excel", {"location": str(path), "objecttype": "gebruik"}, _context(tmp_path))
    readers: set[int] = set()
    read_rows = connector._rows  # type: ignore[attr-defined]

    def observed(source: Path) -> Any:
        for row in read_rows(source):
            readers.add(threading.get_ident())
            yield row

    connector._rows = observed  # type: ignore[attr-defined]
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    store, log = MemoryStore(), MemoryLog()
    run = SyncRun(connector, SCOPE, Owner("import", uuid.uuid4()), store, log, executor=lambda: pool)
    turns = 0
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal turns
        while not done.is_set():
            turns += 1
            await asyncio.sleep(0)

    beat = asyncio.create_task(heartbeat())
    try:
        tally = await run.execute(None)
    finally:
        done.set()
        await beat
        pool.shutdown()
    assert tally.published == 20_000
    assert readers and threading.get_ident() not in readers, "rows were read on the event loop's thread"
    assert turns >= 20, f"the loop turned {turns} times during 20 batches of 1,000 records"


def test_an_ameff_file_over_the_element_cap_is_refused(tmp_path: Path) -> None:
    path = bombs.ameff(tmp_path / "m.xml", components=100, nodes=2_000)
    with pytest.raises(SourceRefused, match="KOPPELHUB_CONNECTORS_MAX_XML_ELEMENTS"):
        parse_ameff(path, max_bytes=1 << 30, max_elements=1_000)


def test_an_ameff_file_is_read_in_memory_that_follows_the_landscape_not_the_file(tmp_path: Path) -> None:
    path = bombs.ameff(tmp_path / "m.xml", components=1_000, nodes=150_000)  # ~17 MB of diagram nodes
    tracemalloc.start()
    try:
        model = parse_ameff(path, max_bytes=1 << 30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (len(model.elements), len(model.relationships)) == (1_000, 999)
    assert peak < 24 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"


def test_an_ameff_file_nesting_deeper_than_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.xml"
    depth = MAX_DEPTH + 36  # 100 levels: a million cost 275 MB, as every open ancestor is held
    path.write_text(
        '<model xmlns="http://www.opengroup.org/xsd/archimate/3.0/">'
        + "<a>" * depth
        + "</a>" * depth
        + "</model>"
    )
    with pytest.raises(SourceRefused, match=f"nests XML elements more than {MAX_DEPTH} deep; an ArchiMate"):
        parse_ameff(path, max_bytes=1 << 20)


def test_an_ameff_file_nesting_as_deep_as_the_cap_is_read(tmp_path: Path) -> None:
    path = tmp_path / "deep.xml"
    inner = MAX_DEPTH - 1  # under the model root
    path.write_text(
        '<model xmlns="http://www.opengroup.org/xsd/archimate/3.0/">'
        + "<a>" * inner
        + "</a>" * inner
        + "</model>"
    )
    assert parse_ameff(path, max_bytes=1 << 20).counts == {}
