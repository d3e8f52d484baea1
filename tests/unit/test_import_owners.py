"""An import or connector records only its own organisation's gebruik, applicaties and
koppelingen (connectors/mapping.py): a row that would create one owned by another organisation
is a row error, as a publish of it is a 403, and the rows around it are imported."""

from __future__ import annotations

from connectors.base import Change, Record
from connectors.mapping import map_records
from schemas.landscape import Applicatie, Gebruik, Koppeling


def _mapper(record: Record) -> list[Change]:
    return [Change(obj) for obj in record.data["objects"]]


def _outcome(*objects: object, organisatie: str | None = "gem-a") -> list[tuple[str, str]] | None:
    [(_, problems)] = map_records(_mapper, [(Record({"objects": list(objects)}, row=2), None)], organisatie)
    return problems


def test_an_object_owned_by_another_organisation_is_refused_with_its_owner_field() -> None:
    theirs = Koppeling(id="k-1", applicatieA="a", applicatieB="b", type="api", organisatie="gem-b")
    problems = _outcome(theirs)
    assert problems is not None and [field for field, _ in problems] == ["organisatie"]
    assert "'gem-b'" in problems[0][1] and "'gem-a'" in problems[0][1]
    assert _outcome(Applicatie(id="a-1", naam="X", aanbieder="gem-b")) is not None
    # One record, two objects: the whole record is refused, not half of it.
    mine = Gebruik(id="g-1", afnemer="gem-a", applicatie="a-1", status="In productie")
    assert _outcome(mine, Applicatie(id="a-1", naam="X", aanbieder="gem-b")) is not None


def test_its_own_unowned_and_hub_wide_objects_map() -> None:
    assert _outcome(Gebruik(id="g-1", afnemer="gem-a", applicatie="a-1", status="In productie")) is None
    assert _outcome(Applicatie(id="a-1", naam="X")) is None  # no aanbieder: nobody's
    theirs = Koppeling(id="k-1", applicatieA="a", applicatieB="b", type="api", organisatie="gem-b")
    assert _outcome(theirs, organisatie=None) is None  # a hub-wide kind


def test_an_architecture_tools_component_of_another_aanbieder_is_recorded_as_nobodys() -> None:
    from connectors.ameff.mapping import component_changes

    def mapper(record: Record) -> list[Change]:
        return component_changes("gem-a", "c-1", "Zaaksysteem", dict(record.data))

    [(objects, problems)] = map_records(mapper, [(Record({"aanbieder": "centric"}), None)], "gem-a")

    assert problems is None  # not refused: the gebruik is gem-a's, the applicatie nobody's
    assert [o[0] for o in objects] == ["applicatie", "gebruik"]
    assert b"centric" not in objects[0][3]
