"""The Softwarecatalogus's objects as landscape objects and back (pure mappings)."""

from __future__ import annotations

import pytest

from connectors.base import RecordRejected
from connectors.softwarecatalogus.mapping import Ids, catalogue_body, public, to_landscape
from schemas.landscape import validate_landscape_data, vastgelegd_type

GEM, LEV, HUB_GEM = (
    "5b8e0a1c-3f7d-4c2e-9a61-0d4f2b7e8c13",
    "9d2e4b7a-1c3f-4e8d-a5b6-7f0e1d2c3b4a",
    "org-voorbeeldstad",
)
MODULE, OTHER_MODULE = "0f6c2d9e-8b41-4a57-b3e2-6a1d9c4f7e20", "2d4f6a8c-0e1b-4c3d-9f5a-7b9c1d3e5f70"
IDS = Ids({GEM: HUB_GEM})


def test_a_module_is_an_applicatie_with_related_objects_reduced_to_their_ids() -> None:
    raw = {
        "id": MODULE,
        "naam": "Open Zaak",
        "moduleType": "Applicatie",
        "licentie": "Open source",
        "aanbieder": {"id": LEV, "naam": "Leverancier BV"},
        "referentieComponenten": [{"@self": {"id": "rc-1"}}, "rc-2", None],
        "beschrijvingKort": "not a landscape field",
        "@self": {"id": MODULE, "updated": "2025-01-01T00:00:01+00:00"},
    }

    model = to_landscape("applicatie", raw, IDS).model_dump(mode="json", exclude_none=True)

    assert model == {
        "id": MODULE,
        "naam": "Open Zaak",
        "type": "Applicatie",
        "licentietype": "Open source",
        "aanbieder": LEV,
        "referentiecomponenten": ["rc-1", "rc-2"],
    }


def test_the_connectors_own_organisation_is_known_by_its_hub_id_everywhere() -> None:
    organisatie = {"id": GEM, "naam": "Gemeente Voorbeeldstad", "type": "Gemeente", "cbsNummer": "0999"}
    gebruik = {"id": "g-1", "afnemer": {"id": GEM}, "module": MODULE, "status": "In productie"}

    org = to_landscape("organisatie", organisatie, IDS)
    use = to_landscape("gebruik", gebruik, IDS).model_dump(mode="json")

    assert (org.id, org.model_dump()["cbsCode"]) == (HUB_GEM, "0999")
    assert (use["afnemer"], use["applicatie"], use["status"]) == (HUB_GEM, MODULE, "In productie")


def test_a_gebruik_without_afnemer_belongs_to_the_organisation_that_keeps_it() -> None:
    raw = {"id": "g-1", "module": MODULE, "status": "Gepland", "@self": {"id": "g-1", "organisation": GEM}}

    assert to_landscape("gebruik", raw, IDS).model_dump()["afnemer"] == HUB_GEM


def test_a_koppeling_takes_its_owner_from_self_organisation_and_the_registers_spelling_of_message_queue() -> (
    None
):
    raw = {
        "id": "k-1",
        "moduleA": {"id": MODULE},
        "moduleB": OTHER_MODULE,
        "type": "message que",
        "gegevensuitwisselingRichting": "AnaarB",
        "standaardversies": [{"id": "std-1"}],
        "status": "in gebruik",
        "@self": {"id": "k-1", "organisation": GEM},
    }

    model = to_landscape("koppeling", raw, IDS).model_dump(mode="json", exclude_none=True)

    assert model == {
        "id": "k-1",
        "applicatieA": MODULE,
        "applicatieB": OTHER_MODULE,
        "type": "message queue",
        "richting": "AnaarB",
        "organisatie": HUB_GEM,
        "standaarden": ["std-1"],
        "status": "in gebruik",
    }


def test_an_object_without_an_id_or_with_invalid_fields_is_rejected_with_the_field() -> None:
    with pytest.raises(RecordRejected, match="id"):
        to_landscape("gebruik", {"module": MODULE, "status": "Gepland"}, IDS)
    with pytest.raises(RecordRejected) as bad:
        to_landscape("gebruik", {"id": "g-1", "afnemer": GEM, "module": MODULE, "status": "Kapot"}, IDS)
    assert [column for column, _ in bad.value.problems] == ["status"]


@pytest.mark.parametrize(
    ("objecttype", "data"),
    [
        ("gebruik", {"id": "g-1", "afnemer": HUB_GEM, "applicatie": MODULE, "status": "Uit te faseren",
                     "versie": "1.2", "referentiecomponenten": ["rc-1"]}),
        ("koppeling", {"id": "k-1", "applicatieA": MODULE, "buitengemeentelijkeVoorziening": "bv-1",
                       "type": "message queue", "richting": "bi-directioneel", "organisatie": HUB_GEM}),
    ],
)  # fmt: skip
def test_a_hub_object_written_to_the_catalogue_reads_back_as_the_same_object(
    objecttype: str, data: dict[str, object]
) -> None:
    hub = public(objecttype, _canonical(objecttype, data))
    current = {"id": data["id"], "beschrijvingKort": "kept", "@self": {"id": data["id"], "organisation": GEM}}

    body = catalogue_body(objecttype, hub, IDS, current)
    stored = {**body, "@self": current["@self"]}

    assert body["beschrijvingKort"] == "kept" and "@self" not in body
    assert public(objecttype, to_landscape(objecttype, stored, IDS).model_dump(mode="json")) == hub
    if objecttype == "gebruik":
        assert body["afnemer"] == GEM and body["module"] == MODULE  # the catalogue's ids


def _canonical(objecttype: str, data: dict[str, object]) -> dict[str, object]:
    model = validate_landscape_data(vastgelegd_type(objecttype), data)
    assert model is not None
    return dict(model.model_dump(mode="json"))
