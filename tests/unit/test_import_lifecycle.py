"""The one import lifecycle (create → start → run → finish) on the in-memory import store: what
each way a run ends leaves in the import's row, and which uploads are deleted."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from connectors.base import SourceRefused
from hub.adapters.memory import InMemoryConnectorTables, InMemoryImportStore
from hub.services.imports import AMEFF, ImportLifecycle, ImportSpec, import_spec
from hub.services.sync_rows import Interrupted, Progress, Tally


def lifecycle(tmp_path: Path, outcome: BaseException | Tally) -> ImportLifecycle:
    async def execute(_id: uuid.UUID, _spec: ImportSpec, _progress: Progress | None) -> Tally:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return ImportLifecycle(InMemoryImportStore(InMemoryConnectorTables()), tmp_path / "imports", execute)


def upload(tmp_path: Path) -> ImportSpec:
    path = tmp_path / "imports" / "x" / "a.csv"
    path.parent.mkdir(parents=True)
    path.write_text("id\n")
    return import_spec("org-1", "gebruik", path)


def test_the_builder_defaults_ameff_to_full_and_keeps_gemma_options_for_ameff_only(tmp_path: Path) -> None:
    ameff = import_spec("org-1", AMEFF, tmp_path / "m.xml", gemma=True, gemma_guid_property="GUID")
    csv = import_spec("org-1", "gebruik", tmp_path / "a.xlsx", sheet="Blad1", gemma=True)
    assert (ameff.mode, ameff.options) == ("full", {"gemma": True, "gemma_guid_property": "GUID"})
    assert (csv.mode, csv.options, csv.filename) == ("incremental", {"sheet": "Blad1"}, "a.xlsx")


async def test_a_finished_run_records_its_counts_and_deletes_the_upload(tmp_path: Path) -> None:
    spec = upload(tmp_path)
    imports = lifecycle(tmp_path, Tally(read=3, published=3))

    import_id = await imports.start(spec)
    outcome = await imports.run(import_id, spec, claimed=False)

    record = await imports.store.get(import_id)
    assert outcome.tally is not None and (record.status, record.counts["read"]) == ("done", 3)
    assert not spec.path.exists() and not spec.path.parent.exists()


async def test_a_refused_file_fails_the_import_with_the_reason(tmp_path: Path) -> None:
    spec = upload(tmp_path)
    imports = lifecycle(tmp_path, SourceRefused("the header is wrong"))

    import_id = await imports.start(spec)
    outcome = await imports.run(import_id, spec, claimed=False)

    assert outcome.error == "the header is wrong"
    assert (await imports.store.get(import_id)).status == "failed"


async def test_a_stopping_runner_gives_the_import_back_to_the_queue(tmp_path: Path) -> None:
    spec = upload(tmp_path)
    imports = lifecycle(tmp_path, Interrupted("stopping"))
    await imports.create(spec)
    claimed = await imports.store.claim()
    assert claimed is not None

    outcome = await imports.run(claimed.id, spec, claimed=True)

    assert outcome.requeued and (await imports.store.get(claimed.id)).status == "queued"
    assert spec.path.exists()  # it runs again later


@pytest.mark.parametrize(("claimed", "status"), [(False, "failed"), (True, "running")])
async def test_a_cancelled_run_fails_only_an_import_nobody_else_would_take_over(
    tmp_path: Path, claimed: bool, status: str
) -> None:
    spec = upload(tmp_path)
    imports = lifecycle(tmp_path, asyncio.CancelledError())
    import_id = await imports.start(spec)

    with pytest.raises(asyncio.CancelledError):
        await imports.run(import_id, spec, claimed=claimed)

    assert (await imports.store.get(import_id)).status == status
