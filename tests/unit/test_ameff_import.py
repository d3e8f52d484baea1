"""AMEFF import: components become applicaties with a gebruik, relationships koppelingen with the
direction they imply; GEMMA mode keys referentiecomponenten on the GUID; hostile or malformed
files are refused with a clear reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.ameff.parse import MAX_PROBLEMS, parse_ameff
from connectors.base import SourceRefused
from schemas.landscape import Applicatie, Gebruik, Koppeling, Referentiecomponent
from tests.support.ameff import map_file, sample

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<model xmlns="http://www.opengroup.org/xsd/archimate/3.0/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" identifier="id-m">\n'
)


def model(tmp_path: Path, body: str, *, head: str = HEAD) -> Path:
    path = tmp_path / "model.xml"
    path.write_text(head + body + "</model>\n", encoding="utf-8")
    return path


def component(ident: str, name: str, props: str = "") -> str:
    return (
        f'<element identifier="{ident}" xsi:type="ApplicationComponent"><name>{name}</name>{props}</element>'
    )


def by_type(changes: list, cls: type) -> list:  # type: ignore[type-arg]
    return [c.object for c in changes if isinstance(c.object, cls)]


def test_archisurance_components_and_their_relationships_become_the_landscape() -> None:
    changes, rejected = map_file(sample("archisurance.xml"), "org-1")

    apps, usage, links = by_type(changes, Applicatie), by_type(changes, Gebruik), by_type(changes, Koppeling)
    assert rejected == []
    assert len(apps) == 10 and {a.naam for a in apps} >= {"Home & Away Policy Administration", "CRM System"}
    assert (
        len(usage) == 10
        and {g.status for g in usage} == {"In productie"}
        and {g.afnemer for g in usage} == {"org-1"}
    )
    assert len(links) == 7 and all(k.organisatie == "org-1" for k in links)
    app_ids = {a.id for a in apps}
    assert all(k.applicatieA in app_ids and k.applicatieB in app_ids for k in links)


def test_relationship_kinds_imply_the_direction(tmp_path: Path) -> None:
    rels = "".join(
        f'<relationship identifier="r-{kind}{extra}" source="a" target="b" xsi:type="{kind}" {attrs}/>'
        for kind, extra, attrs in [
            ("Flow", "", ""),
            ("Serving", "", ""),
            ("Triggering", "", ""),
            ("Association", "", ""),
            ("Association", "d", 'isDirected="true"'),
            ("Composition", "", ""),
        ]
    )
    path = model(
        tmp_path,
        f"<elements>{component('a', 'A')}{component('b', 'B')}</elements>"
        f"<relationships>{rels}</relationships>",
    )

    links = by_type(map_file(path, "org-1")[0], Koppeling)

    assert sorted(k.richting for k in links) == ["AnaarB", "AnaarB", "AnaarB", "AnaarB", "bi-directioneel"]
    assert all(k.type == "n.v.t." for k in links)


def test_properties_set_gebruik_status_and_koppeling_fields_by_their_definition_name(tmp_path: Path) -> None:
    props = (
        '<properties><property propertyDefinitionRef="p1"><value>Uit te faseren</value></property>'
        "</properties>"
    )
    rprops = (
        '<properties><property propertyDefinitionRef="p2"><value>api</value></property>'
        '<property propertyDefinitionRef="p3"><value>BnaarA</value></property></properties>'
    )
    body = (
        f"<elements>{component('a', 'A', props)}{component('b', 'B')}</elements>"
        '<relationships><relationship identifier="r" source="a" target="b" xsi:type="Flow">'
        f"{rprops}</relationship></relationships>"
        "<propertyDefinitions>"
        '<propertyDefinition identifier="p1" type="string"><name>Status</name></propertyDefinition>'
        '<propertyDefinition identifier="p2" type="string"><name>type</name></propertyDefinition>'
        '<propertyDefinition identifier="p3" type="string"><name>Richting</name></propertyDefinition>'
        "</propertyDefinitions>"
    )
    changes, _ = map_file(model(tmp_path, body), "org-1")
    apps = {a.naam: a.id for a in by_type(changes, Applicatie)}

    assert {g.applicatie: g.status for g in by_type(changes, Gebruik)}[apps["A"]] == "Uit te faseren"
    [link] = by_type(changes, Koppeling)
    assert (link.applicatieA, link.applicatieB, link.richting, link.type) == (
        apps["B"],
        apps["A"],
        "BnaarA",
        "api",
    )


def test_ids_are_stable_per_organisation_and_differ_between_organisations(tmp_path: Path) -> None:
    path = model(tmp_path, f"<elements>{component('a', 'A')}</elements>")
    one, again, other = map_file(path, "org-1")[0], map_file(path, "org-1")[0], map_file(path, "org-2")[0]

    assert [c.object for c in one] == [c.object for c in again]
    assert by_type(one, Applicatie)[0].id != by_type(other, Applicatie)[0].id


def test_gemma_mode_keys_referentiecomponenten_on_the_guid_property_by_name_or_identifier(
    tmp_path: Path,
) -> None:
    guid = (
        '<properties><property propertyDefinitionRef="propid-2">'
        "<value>2b2b88ba-8efe-46d3-8b40-47af290bc418</value></property></properties>"
    )
    named = (
        f"<elements>{component('id-x', 'Zaakregistratiecomponent', guid)}"
        f"{component('id-y', 'Zonder GUID')}</elements>"
        '<propertyDefinitions><propertyDefinition identifier="propid-2" type="string"><name>Object ID</name>'
        "</propertyDefinition></propertyDefinitions>"
    )
    changes, rejected = map_file(model(tmp_path, named), "org-1", gemma=True)
    assert by_type(changes, Referentiecomponent) == [
        Referentiecomponent(id="2b2b88ba-8efe-46d3-8b40-47af290bc418", naam="Zaakregistratiecomponent")
    ]
    assert len(rejected) == 1 and "id-y" in rejected[0] and "GUID" in rejected[0]
    by_id, _ = map_file(model(tmp_path, named), "org-1", gemma=True, guid_property="propid-2")
    assert by_type(by_id, Referentiecomponent)[0].id == "2b2b88ba-8efe-46d3-8b40-47af290bc418"
    assert by_type(by_id, Applicatie) == []


def test_the_gemma_sample_imports_although_it_is_schema_invalid() -> None:
    parsed = parse_ameff(sample("GEMMA_test.xml"), max_bytes=1_000_000)
    assert parsed.counts == {"Capability": 2}  # well-formed: read; no ApplicationComponent in it


def test_a_malformed_file_is_refused_with_line_and_column() -> None:
    with pytest.raises(SourceRefused, match=r"not well-formed XML: mismatched tag at line \d+, column \d+"):
        parse_ameff(sample("GEMMA_malformed.xml"), max_bytes=1_000_000)


def test_billion_laughs_is_refused_without_expanding_anything(tmp_path: Path) -> None:
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE model [<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
        + ']>\n<model xmlns="http://www.opengroup.org/xsd/archimate/3.0/"><name>&i;</name></model>'
    )
    path = tmp_path / "bomb.xml"
    path.write_text(bomb)
    with pytest.raises(SourceRefused, match="DTD"):
        parse_ameff(path, max_bytes=1_000_000)


def test_an_external_entity_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "xxe.xml"
    path.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE model [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        '<model xmlns="http://www.opengroup.org/xsd/archimate/3.0/"><name>&x;</name></model>'
    )
    with pytest.raises(SourceRefused, match="DTD"):
        parse_ameff(path, max_bytes=1_000_000)


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = model(tmp_path, "<elements>" + component("a", "A" * 5000) + "</elements>")
    with pytest.raises(SourceRefused, match="limit is 1024"):
        parse_ameff(path, max_bytes=1024)


def test_a_file_that_is_not_archimate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.xml"
    path.write_text("<html><body/></html>")
    with pytest.raises(SourceRefused, match="not an ArchiMate exchange file"):
        parse_ameff(path, max_bytes=1_000_000)


def test_a_prefixed_archimate_namespace_maps_as_the_default_one(tmp_path: Path) -> None:
    body = (
        f"<elements>{component('a', 'A')}{component('b', 'B')}</elements>"
        '<relationships><relationship identifier="r" source="a" target="b" xsi:type="Flow"/></relationships>'
    )
    default = map_file(model(tmp_path, body), "org-1")
    am = body.replace("<", "<am:").replace("<am:/", "</am:").replace('xsi:type="', 'xsi:type="am:')
    head = HEAD.replace("<model xmlns=", "<am:model xmlns:am=")
    path = tmp_path / "prefixed.xml"
    path.write_text(head + am + "</am:model>\n", encoding="utf-8")

    assert map_file(path, "org-1") == default and len(default[0]) == 5


def test_identifiers_given_twice_reject_every_component_that_has_them(tmp_path: Path) -> None:
    body = (
        f"<elements>{component('a', 'Eerste')}{component('a', 'Tweede')}{component('b', 'B')}</elements>"
        '<relationships><relationship identifier="r" source="a" target="b" xsi:type="Flow"/></relationships>'
    )

    changes, rejected = map_file(model(tmp_path, body), "org-1")

    assert [a.naam for a in by_type(changes, Applicatie)] == ["B"]
    assert sorted(rejected) == [
        "element a: the identifier 'a' is given to more than one element or relationship; an identifier "
        "names one: none of them is imported",
    ] * 2 + ["relationship r: source 'a' names more than one element or relationship of the model"]


def test_a_relationship_identifier_given_twice_imports_neither_relationship(tmp_path: Path) -> None:
    body = (
        f"<elements>{component('a', 'A')}{component('b', 'B')}</elements>"
        '<relationships><relationship identifier="r" source="a" target="b" xsi:type="Flow"/>'
        '<relationship identifier="r" source="b" target="a" xsi:type="Flow"/></relationships>'
    )

    changes, rejected = map_file(model(tmp_path, body), "org-1")

    assert by_type(changes, Koppeling) == []
    assert [r.split(":")[0] for r in rejected] == ["relationship r"] * 2


def test_what_has_no_identifier_source_or_target_is_reported(tmp_path: Path) -> None:
    body = (
        '<elements><element xsi:type="ApplicationComponent"><name>Zonder id</name></element>'
        f"{component('a', 'A')}</elements>"
        '<relationships><relationship source="a" target="a" xsi:type="Flow"/>'
        '<relationship identifier="r" source="a" xsi:type="Serving"/></relationships>'
    )

    changes, rejected = map_file(model(tmp_path, body), "org-1")

    assert [a.naam for a in by_type(changes, Applicatie)] == ["A"]
    assert rejected == [
        "element 'Zonder id': has no identifier; the import needs one for every ApplicationComponent",
        "relationship from 'a' to 'a': has no identifier; the import needs one for every Flow",
        "relationship r: has no target; a relationship of type Serving needs both",
    ]


def test_a_relationship_to_an_element_the_landscape_does_not_hold_is_no_error(tmp_path: Path) -> None:
    body = (
        '<elements><element identifier="x" xsi:type="BusinessActor"><name>Burger</name></element>'
        f"{component('a', 'A')}</elements>"
        '<relationships><relationship identifier="r" source="a" target="x" xsi:type="Serving"/>'
        '<relationship identifier="r2" source="r" target="a" xsi:type="Association"/></relationships>'
    )

    changes, rejected = map_file(model(tmp_path, body), "org-1")

    assert rejected == [] and by_type(changes, Koppeling) == []


def test_past_a_thousand_unreadable_elements_the_rest_is_counted_in_one_error(tmp_path: Path) -> None:
    untyped = "".join(f'<element identifier="e{i}"><name>X</name></element>' for i in range(MAX_PROBLEMS + 5))

    _, rejected = map_file(model(tmp_path, f"<elements>{untyped}</elements>"), "org-1")

    assert len(rejected) == MAX_PROBLEMS + 1
    assert rejected[0] == "element e0: has no xsi:type, so its ArchiMate type is unknown"
    assert rejected[-1] == "model: 5 more elements or relationships could not be read (as those above)"
