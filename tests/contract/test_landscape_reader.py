"""Read side of the landscape (lists, filters, paging, landschap) on both stores."""

from __future__ import annotations

import pytest

from hub.ports import UnknownFilter
from schemas import CloudEvent
from tests.contract.conftest import Harness, vastgelegd


async def _ids(landscape: Harness, objecttype: str, **filters: str) -> list[str]:
    page = await landscape.reader.list(objecttype, filters, after=None, limit=100)
    return [o.id for o in page.items]


@pytest.fixture
async def filled(landscape: Harness) -> Harness:
    def app(object_id: str, *rcs: str, aanbieder: str | None = "org-2") -> CloudEvent:
        return vastgelegd(
            "applicatie",
            {"id": object_id, "naam": object_id, "aanbieder": aanbieder, "referentiecomponenten": list(rcs)},
        )

    def use(object_id: str, afnemer: str, applicatie: str, status: str) -> CloudEvent:
        return vastgelegd(
            "gebruik", {"id": object_id, "afnemer": afnemer, "applicatie": applicatie, "status": status}
        )

    def link(object_id: str, a: str, b: str | None, **more: str) -> CloudEvent:
        other = {"applicatieB": b} if b else {"buitengemeentelijkeVoorziening": "BRP"}
        return vastgelegd("koppeling", {"id": object_id, "applicatieA": a, "type": "api", **other, **more})

    await landscape.apply(
        vastgelegd("organisatie", {"id": "org-1", "naam": "Gemeente A", "type": "Gemeente"}),
        vastgelegd("organisatie", {"id": "org-2", "naam": "Leverancier B", "type": "Leverancier"}),
        app("app-1", "rc-1"), app("app-2", "rc-2"), app("app-3", "rc-1", "rc-2", aanbieder=None),
        use("g-1", "org-1", "app-1", "In productie"), use("g-2", "org-1", "app-2", "Gepland"),
        use("g-3", "org-3", "app-1", "Gepland"),
        link("k-1", "app-1", "app-2", organisatie="org-1"), link("k-2", "app-3", "app-1"),
        link("k-3", "app-3", None),
    )  # fmt: skip
    return landscape


async def test_each_list_filter_selects_what_it_names(filled: Harness) -> None:
    assert await _ids(filled, "organisatie", type="Leverancier") == ["org-2"]
    assert await _ids(filled, "applicatie", aanbieder="org-2") == ["app-1", "app-2"]
    assert await _ids(filled, "applicatie", referentiecomponent="rc-1") == ["app-1", "app-3"]
    assert await _ids(filled, "gebruik", afnemer="org-1") == ["g-1", "g-2"]
    assert await _ids(filled, "gebruik", applicatie="app-1") == ["g-1", "g-3"]
    assert await _ids(filled, "gebruik", status="Gepland") == ["g-2", "g-3"]
    assert await _ids(filled, "gebruik", afnemer="org-1", status="Gepland") == ["g-2"]
    assert await _ids(filled, "koppeling", applicatie="app-1") == ["k-1", "k-2"]  # side A or B
    assert await _ids(filled, "koppeling", organisatie="org-1") == ["k-1"]
    assert await _ids(filled, "gebruik", afnemer="nobody") == []


async def test_pages_follow_each_other_in_id_order_without_gaps(filled: Harness) -> None:
    seen, after = [], None
    while True:
        page = await filled.reader.list("applicatie", {}, after=after, limit=2)
        seen.append([o.id for o in page.items])
        if page.next_cursor is None:
            break
        after = page.next_cursor
    assert seen == [["app-1", "app-2"], ["app-3"]]


async def test_an_exact_page_has_no_next(filled: Harness) -> None:
    page = await filled.reader.list("organisatie", {}, after=None, limit=2)
    assert [o.id for o in page.items] == ["org-1", "org-2"] and page.next_cursor is None


async def test_ids_sort_by_code_point_in_both_stores(landscape: Harness) -> None:
    for object_id in ["b", "B", "a-2", "a_1", "Ä", "10", "9"]:
        await landscape.apply(vastgelegd("standaard", {"id": object_id, "naam": "n"}))

    assert await _ids(landscape, "standaard") == sorted(["b", "B", "a-2", "a_1", "Ä", "10", "9"])


async def test_an_unknown_filter_is_refused_by_name(filled: Harness) -> None:
    with pytest.raises(UnknownFilter, match="'kleur'"):
        await filled.reader.list("gebruik", {"kleur": "blauw"}, after=None, limit=10)


async def test_landschap_holds_the_organisations_gebruik_and_koppelingen(filled: Harness) -> None:
    found = await filled.reader.landschap("org-1")

    assert found.organisatie is not None and found.organisatie.state["naam"] == "Gemeente A"
    assert [(g.id, a.id if a else None) for g, a in found.gebruik] == [("g-1", "app-1"), ("g-2", "app-2")]
    assert [k.id for k in found.koppelingen] == ["k-1"]


async def test_owners_names_the_owning_organisation_of_each_stored_object(filled: Harness) -> None:
    keys = [("gebruik", "g-1"), ("gebruik", "g-3"), ("applicatie", "app-1"), ("applicatie", "app-3")]
    keys += [("koppeling", "k-1"), ("koppeling", "k-2"), ("organisatie", "org-2"), ("gebruik", "nope")]
    assert await filled.reader.owners(keys) == {
        ("gebruik", "g-1"): "org-1",
        ("gebruik", "g-3"): "org-3",
        ("applicatie", "app-1"): "org-2",
        ("applicatie", "app-3"): None,
        ("koppeling", "k-1"): "org-1",
        ("koppeling", "k-2"): None,
        ("organisatie", "org-2"): "org-2",
    }


async def test_objects_gives_each_stored_object_as_get_does(filled: Harness) -> None:
    keys = [("organisatie", "org-2"), ("gebruik", "g-1"), ("koppeling", "k-3"), ("gebruik", "nope")]
    keys += [("melding", "m-1")]  # a connector's own kind, never in the landscape
    found = await filled.reader.objects(keys)
    assert set(found) == {("organisatie", "org-2"), ("gebruik", "g-1"), ("koppeling", "k-3")}
    for (objecttype, object_id), stored in found.items():
        assert stored == await filled.reader.get(objecttype, object_id)
    assert found["organisatie", "org-2"].state["naam"] == "Leverancier B"
    assert await filled.reader.objects([]) == {}
