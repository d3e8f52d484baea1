"""Large Excel imports map in a worker process: the records it hands the event log are exactly
those the in-process path makes, which are exactly the binding of the events
``vastgelegd_event`` makes. CSV imports map in the runner's process (cheaper, see
``CsvConnector.mapper``)."""

from __future__ import annotations

import csv
import multiprocessing
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from connectors.base import ConnectorContext
from connectors.events import vastgelegd_event, vastgelegd_record
from connectors.kinds import KINDS  # noqa: F401 - registers every connector kind
from connectors.registry import create
from hub.ports import RecordLog
from hub.ports.connectors import BatchCommit, Fingerprint, Key, Owner, SyncScope
from hub.services import sync as sync_module
from hub.services.sync import SyncRun
from hub.services.sync_rows import Tally
from schemas import CloudEvent
from schemas.bindings import KafkaRecord, to_kafka_record

ORG = "org-1"
SCOPE = SyncScope("urn:nld:hub:import:org-1", ORG, "import:org-1")


def test_a_prepared_record_is_the_binding_of_the_event() -> None:
    data = {"id": "g-1", "afnemer": ORG, "applicatie": "app-ë", "status": "In productie", "lijst": ["a", "b"]}
    event = vastgelegd_event(SCOPE.source, SCOPE.key, "gebruik", data, "d" * 32, 3)
    expected = to_kafka_record(event)
    made = vastgelegd_record(
        SCOPE.source, SCOPE.key, "gebruik", "g-1", event.data_bytes() or b"", "d" * 32, 3
    )
    assert made == expected


class MemoryStore:
    def __init__(self) -> None:
        self.prints: dict[Key, Fingerprint] = {}

    async def known(self, scope: SyncScope, keys: Sequence[Key]) -> dict[Key, Fingerprint]:
        return {k: self.prints[k] for k in keys if k in self.prints}

    async def commit(self, scope: SyncScope, owner: Owner, batch: BatchCommit) -> None:
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


class CountingPool(ProcessPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self.submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def rows(n: int) -> list[list[str]]:
    out = [["id", "afnemer", "applicatie", "status", "versie", "referentiecomponenten"]]
    for i in range(n):
        status = "in productie" if i % 97 == 5 else "In productie"  # some rows are invalid
        out.append([f"g-{i}", ORG, f"app-ë{i % 7}", status, f"1.{i}", f"rc-{i % 3}|rc-9"])
    out.append([f"g-{n - 1}", ORG, "app-other", "Gepland", "", ""])  # the same id again
    return out


def write(path: Path, n: int) -> Path:
    if path.suffix == ".xlsx":
        book = Workbook(write_only=True)
        sheet = book.create_sheet()
        for row in rows(n):
            sheet.append(row)
        book.save(path)
        return path
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter=";").writerows(rows(n))
    return path


async def run(path: Path, pool: ProcessPoolExecutor | None) -> tuple[Tally, list[KafkaRecord], MemoryStore]:
    ctx = ConnectorContext(
        organisatie=ORG, scope="import:org-1", work_dir=path.parent, file_roots=(path.parent,)
    )
    kind = "excel" if path.suffix == ".xlsx" else "csv"
    connector = create(kind, {"location": str(path), "objecttype": "gebruik"}, ctx)
    connector.batch_size = 700  # type: ignore[misc]  # several batches, some pipelined
    store, log = MemoryStore(), MemoryLog()
    assert isinstance(log, RecordLog)
    sync = SyncRun(
        connector,
        SCOPE,
        Owner("import", uuid.uuid4()),
        store,
        log,
        executor=(lambda: pool) if pool is not None else None,
        offload_min=1,
    )
    tally = await sync.execute(None)
    return tally, log.records, store


async def test_mapping_in_a_worker_process_publishes_the_same_records(tmp_path: Path) -> None:
    path = write(tmp_path / "g.xlsx", 3000)
    inline = await run(path, None)
    with CountingPool() as pool:
        offloaded = await run(path, pool)

    assert pool.submitted == 5  # every batch went to the worker
    (t1, records1, store1), (t2, records2, store2) = inline, offloaded
    assert (
        t1.counts() == t2.counts() and t1.invalid > 0 and t1.published == 3001 - t1.invalid
    )  # g-2999 twice in one batch, with other content: the second is a row error
    assert t1.sample_errors == t2.sample_errors and t1.per_type == t2.per_type
    assert records1 == records2
    assert store1.prints == store2.prints


async def test_a_csv_import_maps_in_this_process_and_never_starts_the_worker(tmp_path: Path) -> None:
    path = write(tmp_path / "g.csv", 3000)
    inline = await run(path, None)
    with CountingPool() as pool:
        offered = await run(path, pool)

    assert pool.submitted == 0
    assert offered[0].counts() == inline[0].counts() and offered[0].published > 0
    assert offered[1] == inline[1]


def test_a_rows_object_is_serialised_as_the_event_data_would_be() -> None:
    """map_records writes a row's own object with its model's JSON serialiser: the bytes must be
    those of ``dumps_compact(model_dump(mode="json"))``, which the publish path writes (accents, quotes,
    backslashes, tabs and separators in cells included)."""
    from connectors.base import Record
    from connectors.mapping import map_records
    from connectors.tabular.columns import header_index
    from connectors.tabular.connector import map_row
    from schemas.jsonbytes import dumps_compact

    header = [
        "id",
        "afnemer",
        "applicatie",
        "status",
        "versie",
        "referentiecomponenten",
        "interneAantekening",
    ]
    index = header_index("gebruik", header)
    cells = [
        "g-é",
        ORG,
        'app "ë" \\ \u2028 x',
        "In productie",
        "1.0 beta ☃",
        "rc-2|rc-1|rc-2",
        "a\tb\nc\x01 \x7f",
    ]
    record = Record({"shared": {"index": index}, "cells": cells}, 2)
    [(objects, problems)] = map_records(
        lambda r: map_row("gebruik", ORG, r), [(record, ("gebruik", "g-é", "d" * 32))]
    )
    assert problems is None
    [(_, _, digest, data_json)] = objects
    [change] = map_row("gebruik", ORG, record)
    assert digest == "d" * 32
    assert data_json == dumps_compact(change.object.model_dump(mode="json"))


async def test_an_import_freezes_the_start_up_heap_before_it_reads_a_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full collections of an import then scan what it made, not every module and model the
    process loaded (they were about a ninth of an import's CPU, benchmarks/imports.py)."""
    path = write(tmp_path / "g.csv", 30)
    ctx = ConnectorContext(organisatie=ORG, scope="import:org-1", work_dir=tmp_path, file_roots=(tmp_path,))
    connector = create("csv", {"location": str(path), "objecttype": "gebruik"}, ctx)
    store, log = MemoryStore(), MemoryLog()
    frozen_at: list[int] = []
    monkeypatch.setattr(sync_module, "freeze_start_up_heap", lambda: frozen_at.append(len(log.records)))

    tally = await SyncRun(connector, SCOPE, Owner("import", uuid.uuid4()), store, log).execute(None)

    assert frozen_at == [0] and tally.published > 0
