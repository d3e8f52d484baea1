"""AMEFF export: valid against the Open Group XSD, and it imports back into another organisation
as the same landscape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lxml import etree

from connectors.ameff.export import export_ameff
from connectors.landschap import Landschap
from schemas.landscape import Applicatie, Gebruik, Koppeling, validate_landscape_data, vastgelegd_type
from tests.support.ameff import archimate_schema, map_file, sample

LANDSCHAP = Landschap(
    organisatie="org-1",
    applicaties=[
        Applicatie(
            id="app-zaak",
            naam="Zaaksysteem & co",
            aanbieder="lev-1",
            type="Applicatie",
            licentietype="Open source",
            referentiecomponenten=["rc-1", "rc-2"],
        ),
        Applicatie(id="app-dms", naam="DMS"),
        Applicatie(id="app-crm", naam="Klantbeeld <KCC>"),
        Applicatie(id="app-unused", naam="Niet in gebruik"),
    ],
    gebruik=[
        Gebruik(
            id="g-1",
            afnemer="org-1",
            applicatie="app-zaak",
            status="In productie",
            versie="1.17",
            referentiecomponenten=["rc-1"],
            interneAantekening="privé",
        ),
        Gebruik(id="g-2", afnemer="org-1", applicatie="app-dms", status="Uit te faseren"),
        Gebruik(id="g-3", afnemer="org-1", applicatie="app-crm", status="Gepland"),
    ],
    koppelingen=[
        Koppeling(
            id="k-1",
            applicatieA="app-zaak",
            applicatieB="app-dms",
            type="api",
            richting="AnaarB",
            organisatie="org-1",
            standaarden=["zgw"],
            status="In productie",
        ),
        Koppeling(
            id="k-2",
            applicatieA="app-zaak",
            applicatieB="app-crm",
            type="webservices",
            richting="BnaarA",
            organisatie="org-1",
        ),
        Koppeling(
            id="k-3",
            applicatieA="app-crm",
            applicatieB="app-dms",
            type="n.v.t.",
            richting="bi-directioneel",
            organisatie="org-1",
        ),
        Koppeling(
            id="k-4",
            applicatieA="app-zaak",
            buitengemeentelijkeVoorziening="BRP",
            type="digikoppeling",
            richting="BnaarA",
            organisatie="org-1",
        ),
        Koppeling(
            id="k-5",
            applicatieA="app-dms",
            applicatieB="app-crm",
            type="bestandsoverdracht",
            organisatie="org-1",
        ),
    ],
)


def test_the_export_validates_against_the_open_group_xsd() -> None:
    schema = archimate_schema()
    document = etree.fromstring(export_ameff(LANDSCHAP))

    assert schema.validate(document), schema.error_log
    assert b"priv\xc3\xa9" not in export_ameff(LANDSCHAP)  # interneAantekening stays private


def test_an_empty_landscape_exports_a_valid_file() -> None:
    schema = archimate_schema()
    assert schema.validate(etree.fromstring(export_ameff(Landschap("org-9"))))


def test_the_schema_check_can_fail() -> None:
    schema = archimate_schema()
    assert not schema.validate(etree.parse(str(sample("GEMMA_test.xml"))))


def test_export_then_import_into_another_organisation_reproduces_the_landscape(tmp_path: Path) -> None:
    path = tmp_path / "landschap.xml"
    path.write_bytes(export_ameff(LANDSCHAP))

    changes, rejected = map_file(path, "org-2")
    objects = [c.object for c in changes]
    apps = [o for o in objects if isinstance(o, Applicatie)]
    usage = [o for o in objects if isinstance(o, Gebruik)]
    links = [o for o in objects if isinstance(o, Koppeling)]

    assert rejected == []
    used = {g.applicatie for g in LANDSCHAP.gebruik}
    # app-zaak is lev-1's: org-2 uses it by its id (below) and leaves it as lev-1 has it.
    assert sorted(apps, key=lambda a: a.id) == sorted(
        (a for a in LANDSCHAP.applicaties if a.id in used and a.aanbieder is None), key=lambda a: a.id
    )

    def usage_key(g: Gebruik) -> tuple[object, ...]:
        return (g.applicatie, g.status, g.versie, tuple(g.referentiecomponenten))

    assert {g.afnemer for g in usage} == {"org-2"}
    assert sorted(map(usage_key, usage)) == sorted(map(usage_key, LANDSCHAP.gebruik))

    def link_key(k: Koppeling) -> tuple[object, ...]:
        return (
            k.applicatieA,
            k.applicatieB,
            k.buitengemeentelijkeVoorziening,
            k.type,
            k.richting,
            tuple(k.standaarden),
            k.status,
        )

    assert {k.organisatie for k in links} == {"org-2"}
    assert sorted(map(link_key, links), key=repr) == sorted(map(link_key, LANDSCHAP.koppelingen), key=repr)


def test_the_aanbieder_importing_an_export_records_its_applicatie_and_another_only_uses_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "landschap.xml"
    path.write_bytes(export_ameff(LANDSCHAP))

    by_aanbieder, _ = map_file(path, "lev-1")
    by_other, _ = map_file(path, "org-2")

    zaak = next(a for a in LANDSCHAP.applicaties if a.id == "app-zaak")
    assert [c.object for c in by_aanbieder if c.object == zaak] == [zaak]
    assert [
        c.object for c in by_other if isinstance(c.object, Applicatie) and c.object.id == "app-zaak"
    ] == []
    assert any(isinstance(c.object, Gebruik) and c.object.applicatie == "app-zaak" for c in by_other)


def test_characters_xml_cannot_hold_are_exported_as_replacement_characters() -> None:
    def stored(objecttype: str, data: dict[str, object]) -> Any:
        return validate_landscape_data(vastgelegd_type(objecttype), data)  # as validation accepts it

    landschap = Landschap(
        organisatie="org-1",
        applicaties=[stored("applicatie", {"id": "app-1", "naam": "A\ufffe", "aanbieder": "lev\uffff"})],
        gebruik=[
            stored(
                "gebruik",
                {
                    "id": "g-1",
                    "afnemer": "org-1",
                    "applicatie": "app-1",
                    "status": "Gepland",
                    "versie": "1.0\uffff",
                },
            )
        ],
    )
    schema = archimate_schema()

    document = etree.fromstring(export_ameff(landschap))

    assert schema.validate(document), schema.error_log
    texts = {t for t in document.itertext() if t.strip()}
    assert {"A\ufffd", "lev\ufffd", "1.0\ufffd"} <= texts
