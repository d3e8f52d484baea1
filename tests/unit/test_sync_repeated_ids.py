"""A file that names one object on two rows (hub/services/sync_rows.py ``repeated``): the row the
hub holds, else the first, is kept and the other is a row error that says where the kept one is,
instead of one of them vanishing without a word. The same object twice alike is no problem."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_sync_withdrawal_holds import GOOD, ORG, Imports


async def test_an_id_on_two_rows_with_other_content_keeps_the_first_and_reports_the_second(
    tmp_path: Path,
) -> None:
    imports = Imports(tmp_path)
    twice = [
        ["d-1", ORG, "app-1", "In productie"],
        ["d-2", ORG, "app-2", "Gepland"],
        ["d-1", ORG, "app-9", "Gepland"],
    ]

    tally = await imports.run(twice)

    assert (tally.read, tally.published, tally.invalid) == (3, 2, 1)
    assert [(e["row"], e["message"]) for e in tally.sample_errors] == [
        (4, "gebruik 'd-1' is on row 2 too, with other content; that one is kept (the first)")
    ]
    assert [d["applicatie"] for d in imports.published("d-1")] == ["app-1"]


async def test_an_unchanged_row_and_a_changed_one_with_its_id_keep_the_stored_one(tmp_path: Path) -> None:
    imports = Imports(tmp_path)
    await imports.run(GOOD[:1])  # g-0 as the hub holds it

    tally = await imports.run([["g-0", ORG, "app-9", "Gepland"], GOOD[0], GOOD[0]])  # the edit first

    assert (tally.read, tally.published, tally.unchanged, tally.invalid) == (3, 0, 2, 1)
    assert [(e["row"], e["message"]) for e in tally.sample_errors] == [
        (2, "gebruik 'g-0' is on row 3 too, with other content; that one is kept (as the hub holds it)")
    ]
