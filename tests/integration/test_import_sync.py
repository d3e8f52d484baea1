"""Imports on the real broker and database: only changes travel, full mode withdraws, bad rows
are reported with spreadsheet row numbers while good rows go through."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.settings import Settings
from schemas.envelope import validate_event
from schemas.landscape import validate_landscape_event
from tests.support.connectors import GEBRUIK_HEADER, ORG, harness, write_csv

pytestmark = pytest.mark.integration


def gebruik_rows(n: int, *, status: str = "In productie") -> list[list[str]]:
    return [[f"g-{i}", ORG, f"app-{i}", status, "1.0", "rc-1|rc-2"] for i in range(n)]


async def test_reimporting_the_same_file_publishes_nothing(settings: Settings, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "gebruik.csv", [GEBRUIK_HEADER, *gebruik_rows(50)])
    async with harness(settings) as h:
        first = await h.import_file(path, "gebruik")
        path = write_csv(tmp_path / "gebruik.csv", [GEBRUIK_HEADER, *gebruik_rows(50)])
        second = await h.import_file(path, "gebruik")
        events = await h.events()

    assert first.status == "done", first.error
    assert first.counts == {"read": 50, "published": 50, "unchanged": 0, "invalid": 0, "withdrawn": 0}
    assert second.counts == {"read": 50, "published": 0, "unchanged": 50, "invalid": 0, "withdrawn": 0}
    assert len(events) == 50
    for event in events:  # every event is a valid landscape event from the organisation's import source
        validate_event(event.model_dump(mode="json"))
        assert validate_landscape_event(event) is not None
        assert event.source == f"{settings.source_urn}:import:{ORG}"
        assert event.subject == event.data["id"]


async def test_only_changed_rows_travel(settings: Settings, tmp_path: Path) -> None:
    rows = gebruik_rows(10)
    async with harness(settings) as h:
        await h.import_file(write_csv(tmp_path / "a.csv", [GEBRUIK_HEADER, *rows]), "gebruik")
        rows[3][3] = "Uit te faseren"
        again = await h.import_file(write_csv(tmp_path / "b.csv", [GEBRUIK_HEADER, *rows]), "gebruik")
        events = await h.events()

    assert again.counts["published"] == 1 and again.counts["unchanged"] == 9
    assert again.report["gebruik"] == {"found": 10, "created": 0, "updated": 1, "unchanged": 9, "removed": 0}
    assert [e.data["status"] for e in events if e.subject == "g-3"] == ["In productie", "Uit te faseren"]
    assert len({e.id for e in events}) == 11


async def test_invalid_rows_are_reported_with_row_and_column_and_the_rest_goes_through(
    settings: Settings, tmp_path: Path
) -> None:
    rows = gebruik_rows(5)
    rows[1][3] = "in productie"  # wrong case: spreadsheet row 3
    rows[3][1] = "another-org"  # not the importing organisation: spreadsheet row 5
    path = write_csv(tmp_path / "g.csv", [GEBRUIK_HEADER, *rows], delimiter=";", bom=True)
    async with harness(settings) as h:
        record = await h.import_file(path, "gebruik")
        errors = await h.imports.errors(record.id)
        events = await h.events()

    assert record.status == "done"
    assert record.counts["invalid"] == 2 and record.counts["published"] == 3
    assert [(e.row, e.column) for e in errors] == [(3, "status"), (5, "afnemer")]
    assert "did you mean 'In productie'" in errors[0].message
    assert sorted(e.subject for e in events) == ["g-0", "g-2", "g-4"]


async def test_a_full_import_withdraws_rows_that_disappeared(settings: Settings, tmp_path: Path) -> None:
    async with harness(settings) as h:
        await h.import_file(
            write_csv(tmp_path / "a.csv", [GEBRUIK_HEADER, *gebruik_rows(6)]), "gebruik", mode="full"
        )
        smaller = gebruik_rows(6)[:4]
        record = await h.import_file(
            write_csv(tmp_path / "b.csv", [GEBRUIK_HEADER, *smaller]), "gebruik", mode="full"
        )
        again = await h.import_file(
            write_csv(tmp_path / "c.csv", [GEBRUIK_HEADER, *smaller]), "gebruik", mode="full"
        )
        back = await h.import_file(
            write_csv(tmp_path / "d.csv", [GEBRUIK_HEADER, *gebruik_rows(6)]), "gebruik", mode="full"
        )
        events = await h.events()

    assert record.counts["withdrawn"] == 2 and record.counts["published"] == 0
    assert again.counts["withdrawn"] == 0
    assert back.report["gebruik"]["created"] == 2  # withdrawn objects come back as new
    withdrawn = [e for e in events if e.type.endswith(".ingetrokken.v1")]
    assert sorted(e.subject for e in withdrawn) == ["g-4", "g-5"]
    assert all(e.data == {"id": e.subject} for e in withdrawn)
    assert len({e.id for e in events}) == len(events)  # a comeback is a new event, not a duplicate id


async def test_an_incremental_import_withdraws_nothing(settings: Settings, tmp_path: Path) -> None:
    async with harness(settings) as h:
        await h.import_file(write_csv(tmp_path / "a.csv", [GEBRUIK_HEADER, *gebruik_rows(3)]), "gebruik")
        record = await h.import_file(
            write_csv(tmp_path / "b.csv", [GEBRUIK_HEADER, *gebruik_rows(1)]), "gebruik"
        )
    assert record.counts["withdrawn"] == 0


async def test_a_full_import_without_one_valid_row_withdraws_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    async with harness(settings) as h:
        await h.import_file(
            write_csv(tmp_path / "a.csv", [GEBRUIK_HEADER, *gebruik_rows(3)]), "gebruik", mode="full"
        )
        bad = [[f"g-{i}", ORG, f"app-{i}", "kapot", "", ""] for i in range(3)]
        record = await h.import_file(
            write_csv(tmp_path / "b.csv", [GEBRUIK_HEADER, *bad]), "gebruik", mode="full"
        )
    assert record.counts["invalid"] == 3 and record.counts["withdrawn"] == 0


async def test_a_file_with_unknown_columns_fails_and_publishes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "x.csv", [["id", "naam", "kleur"], ["a", "b", "c"]])
    async with harness(settings) as h:
        record = await h.import_file(path, "applicatie")
        events = await h.events()
    assert record.status == "failed"
    assert record.error is not None and "at position(s) 3" in record.error
    assert events == []
