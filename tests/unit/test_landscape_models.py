"""Landscape object models, event types, data validation messages and the field diff."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import schemas.landscape as landscape
from schemas import validate_event
from schemas.envelope import CloudEvent, Problem
from schemas.generate import JSON_DIR, REGISTRY
from schemas.landscape import (
    OBJECT_TYPES,
    PRIVATE_FIELDS,
    Applicatie,
    Gebruik,
    Ingetrokken,
    Koppeling,
    LandscapeDataError,
    Organisatie,
    Referentiecomponent,
    Standaard,
    aangemaakt_type,
    changed_fields,
    check_subject,
    event_type,
    events,
    gewijzigd_type,
    ingetrokken_type,
    models,
    parse_derived_type,
    parse_inbound_type,
    validate_landscape_data,
    validate_landscape_event,
    vastgelegd_type,
    verwijderd_type,
)

ORG, APP, RC, STD = "org-1", "app-1", "3c1f8a2e-6d4b-4f9a-8e7c-2b5d0a9f1e63", "std-1"

MINIMAL: dict[str, dict[str, Any]] = {
    "organisatie": {"id": ORG, "naam": "Gemeente Voorbeeldstad", "type": "Gemeente"},
    "applicatie": {"id": APP, "naam": "Open Zaak"},
    "gebruik": {"id": "geb-1", "afnemer": ORG, "applicatie": APP, "status": "Gepland"},
    "koppeling": {"id": "kop-1", "applicatieA": APP, "applicatieB": "app-2", "type": "api"},
    "referentiecomponent": {"id": RC, "naam": "Zaakregistratiecomponent"},
    "standaard": {"id": STD, "naam": "ZGW API's"},
}
FULL: dict[str, dict[str, Any]] = {
    "organisatie": {
        **MINIMAL["organisatie"], "oin": "00000001001234567000", "kvkNummer": "12345678",
        "cbsCode": "0999", "website": "https://www.voorbeeldstad.nl", "status": "Actief",
    },
    "applicatie": {
        **MINIMAL["applicatie"], "aanbieder": "org-2", "type": "Component",
        "licentietype": "Open source", "referentiecomponenten": [RC],
    },
    "gebruik": {
        **MINIMAL["gebruik"], "versie": "1.17.0", "referentiecomponenten": [RC],
        "interneAantekening": "Contract loopt tot 2026-12-31.",
    },
    "koppeling": {
        **MINIMAL["koppeling"], "buitengemeentelijkeVoorziening": "BRP", "richting": "BnaarA",
        "organisatie": ORG, "standaarden": [STD], "status": "In productie",
    },
    "referentiecomponent": {**MINIMAL["referentiecomponent"], "status": "In gebruik"},
    "standaard": {**MINIMAL["standaard"], "versie": "1.5"},
}  # fmt: skip
REQUIRED = {
    "organisatie": ["id", "naam", "type"],
    "applicatie": ["id", "naam"],
    "gebruik": ["id", "afnemer", "applicatie", "status"],
    "koppeling": ["id", "applicatieA", "type"],
    "referentiecomponent": ["id", "naam"],
    "standaard": ["id", "naam"],
}
ENUMS = [
    ("organisatie", "type", ["Gemeente", "Leverancier", "Samenwerking", "Community"]),
    ("organisatie", "status", ["Concept", "Actief", "Deactief"]),
    ("applicatie", "type", ["Applicatie", "Systeemsoftware", "Suite", "Component"]),
    ("applicatie", "licentietype", ["Open source", "Closed source"]),
    ("gebruik", "status", ["Verwerving", "Gepland", "In productie", "Uit te faseren", "Uitgefaseerd"]),
    ("koppeling", "type", [
        "api", "webservices", "digikoppeling", "bestandsoverdracht", "message queue",
        "upload naar portaal", "n.v.t.",
    ]),
    ("koppeling", "richting", ["AnaarB", "BnaarA", "bi-directioneel"]),
]  # fmt: skip
PYDANTIC_JARGON = ("Input should", "pydantic", "dictionary", "literal", "Value error", "instance of")


def _problems(objecttype: str, data: Any) -> list[tuple[str, str]]:
    with pytest.raises(LandscapeDataError) as info:
        validate_landscape_data(vastgelegd_type(objecttype), data)
    for _, message in info.value.problems:
        assert not any(word in message for word in PYDANTIC_JARGON), message
    return info.value.problems


def _fields(problems: list[tuple[str, str]]) -> list[str]:
    return [field for field, _ in problems]


def _event(type_: str, data: Any, subject: str | None = "kop-1") -> CloudEvent:
    raw = {"specversion": "1.0", "id": "e1", "source": "urn:nld:oin:00000001001234567000:systeem:x"}
    return validate_event({**raw, "type": type_, "data": data, **({"subject": subject} if subject else {})})


# -- valid objects ----------------------------------------------------------------------


@pytest.mark.parametrize("objecttype", OBJECT_TYPES)
@pytest.mark.parametrize("table", [MINIMAL, FULL], ids=["minimal", "full"])
def test_valid_object_validates_to_its_model(objecttype: str, table: dict[str, dict[str, Any]]) -> None:
    model = validate_landscape_data(vastgelegd_type(objecttype), table[objecttype])
    assert type(model) is OBJECT_TYPES[objecttype]
    assert model is not None and model.model_dump(mode="json", exclude_defaults=True) == table[objecttype]


@pytest.mark.parametrize("objecttype", OBJECT_TYPES)
def test_canonical_dump_has_every_field_with_none_and_empty_lists_for_absent_ones(objecttype: str) -> None:
    model = OBJECT_TYPES[objecttype].model_validate(MINIMAL[objecttype])
    dump = model.model_dump(mode="json")
    assert set(dump) == set(OBJECT_TYPES[objecttype].model_fields)
    for name, value in dump.items():
        if name not in MINIMAL[objecttype]:
            assert value in (None, [])


@pytest.mark.parametrize("objecttype", OBJECT_TYPES)
def test_the_schema_example_of_every_model_is_valid(objecttype: str) -> None:
    model = OBJECT_TYPES[objecttype]
    (example,) = model.model_json_schema()["examples"]
    assert model.model_validate(example).model_dump(mode="json", exclude_defaults=True) == example


def test_lists_of_ids_are_sets_deduplicated_and_sorted() -> None:
    app = Applicatie.model_validate({**MINIMAL["applicatie"], "referentiecomponenten": ["b", "a", "b"]})
    assert app.referentiecomponenten == ["a", "b"]
    assert Applicatie.model_validate(MINIMAL["applicatie"]).referentiecomponenten == []


def test_models_are_immutable() -> None:
    org = Organisatie.model_validate(MINIMAL["organisatie"])
    with pytest.raises(ValidationError):
        org.naam = "Anders"  # type: ignore[misc]


# -- invalid objects --------------------------------------------------------------------


@pytest.mark.parametrize("objecttype", OBJECT_TYPES)
def test_required_fields_match_the_issue_table(objecttype: str) -> None:
    model = OBJECT_TYPES[objecttype]
    assert [n for n, f in model.model_fields.items() if f.is_required()] == REQUIRED[objecttype]


@pytest.mark.parametrize(("objecttype", "field"), [(t, f) for t, fs in REQUIRED.items() for f in fs])
def test_a_missing_required_field_is_named(objecttype: str, field: str) -> None:
    data = {k: v for k, v in FULL[objecttype].items() if k != field}
    assert _problems(objecttype, data) == [(f"data.{field}", "is required")]


@pytest.mark.parametrize(("objecttype", "field", "allowed"), ENUMS)
def test_every_allowed_enum_value_is_accepted(objecttype: str, field: str, allowed: list[str]) -> None:
    for value in allowed:
        OBJECT_TYPES[objecttype].model_validate({**MINIMAL[objecttype], field: value})


@pytest.mark.parametrize(("objecttype", "field", "allowed"), ENUMS)
def test_a_wrong_enum_value_lists_the_allowed_values(objecttype: str, field: str, allowed: list[str]) -> None:
    [(where, message)] = _problems(objecttype, {**MINIMAL[objecttype], field: "Onbekend"})
    assert where == f"data.{field}"
    quoted = [repr(v) for v in allowed]
    assert message == f"must be one of {', '.join(quoted[:-1])} or {quoted[-1]} (got 'Onbekend')"


def test_an_enum_value_in_the_wrong_case_suggests_the_right_one() -> None:
    [(_, message)] = _problems("gebruik", {**MINIMAL["gebruik"], "status": "in productie"})
    assert message.endswith("(got 'in productie'; values are case-sensitive: did you mean 'In productie'?)")


@pytest.mark.parametrize("objecttype", OBJECT_TYPES)
def test_an_unknown_field_is_rejected(objecttype: str) -> None:
    [(where, message)] = _problems(objecttype, {**MINIMAL[objecttype], "kleur": "blauw"})
    assert where == "data.kleur"
    assert message.startswith(f"is not a field of {objecttype}; allowed: 'id', ")


def test_a_misspelt_field_suggests_the_right_name() -> None:
    data = {**MINIMAL["gebruik"], "interneAantekenig": "x"}
    assert _problems("gebruik", data) == [
        ("data.interneAantekenig", "is not a field of gebruik; did you mean 'interneAantekening'?")
    ]


SIDE_B = "is required unless buitengemeentelijkeVoorziening is given"


@pytest.mark.parametrize(
    ("side_b", "valid"),
    [
        ({"applicatieB": "app-2"}, True),
        ({"buitengemeentelijkeVoorziening": "BRP"}, True),
        ({"applicatieB": "app-2", "buitengemeentelijkeVoorziening": "BRP"}, True),
        ({}, False),
        ({"applicatieB": None, "buitengemeentelijkeVoorziening": None}, False),
    ],
)
def test_a_koppeling_needs_applicatie_b_or_a_buitengemeentelijke_voorziening(
    side_b: dict[str, Any], valid: bool
) -> None:
    data = {"id": "kop-1", "applicatieA": APP, "type": "api", **side_b}
    if valid:
        assert isinstance(validate_landscape_data(vastgelegd_type("koppeling"), data), Koppeling)
    else:
        [(where, message)] = _problems("koppeling", data)
        assert where == "data.applicatieB" and message.startswith(SIDE_B)


def test_a_koppeling_without_side_b_is_reported_together_with_other_problems() -> None:
    problems = _problems("koppeling", {"id": "kop-1", "applicatieA": APP, "type": "REST"})
    assert _fields(problems) == ["data.type", "data.applicatieB"]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("oin", "00000001001234567000", None),
        ("oin", "123", "must be an OIN: a string of 20 digits, e.g. '00000001001234567000' (got '123')"),
        ("oin", "000000010012345670001", "must be an OIN: a string of 20 digits"),
        ("oin", "0000000100123456700A", "must be an OIN: a string of 20 digits"),
        ("oin", "\u0660" * 20, "must be an OIN: a string of 20 digits"),  # Arabic-Indic digits
        ("oin", 10012345670001, "must be a string, not a number"),
        ("kvkNummer", "12345678", None),
        ("kvkNummer", "01234567", None),
        (
            "kvkNummer",
            "1234567",
            "must be a KvK-nummer: a string of 8 digits, e.g. '12345678' (got '1234567')",
        ),
        ("kvkNummer", "1234 5678", "must be a KvK-nummer: a string of 8 digits"),
        ("kvkNummer", 12345678, "must be a string, not a number"),
        ("website", "https://www.voorbeeldstad.nl", None),
        ("website", "http://voorbeeldstad.nl/contact?taal=nl", None),
        ("website", "www.voorbeeldstad.nl", "must be an http(s) URL without spaces"),
        ("website", "ftp://voorbeeldstad.nl", "must be an http(s) URL without spaces"),
        ("website", "https://", "must be an http(s) URL without spaces"),
        ("website", "https://voorbeeld stad.nl", "must be an http(s) URL without spaces"),
        ("website", "https://[::1", "must be an http(s) URL without spaces"),
        ("naam", "  ", "must contain text and no control characters (got '  ')"),
        ("naam", "Gemeente\x00Voorbeeldstad", "must contain text and no control characters"),
        ("naam", "", "must not be empty"),
        ("naam", None, "must be a string, not null"),
        ("id", " org-1", "must be an id: no control characters and no leading or trailing spaces"),
        ("id", "org-1 ", "must be an id: no control characters and no leading or trailing spaces"),
        ("id", "org\n1", "must be an id: no control characters and no leading or trailing spaces"),
        ("id", "", "must not be empty"),
        ("id", 1, "must be a string, not a number"),
        ("id", "EAID_3C1F8A2E 6D4B", None),
    ],
)
def test_organisatie_field_formats(field: str, value: Any, expected: str | None) -> None:
    data = {**MINIMAL["organisatie"], field: value}
    if expected is None:
        Organisatie.model_validate(data)
    else:
        [(where, message)] = _problems("organisatie", data)
        assert where == f"data.{field}" and message.startswith(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("r1", [("data.referentiecomponenten", "must be a list of ids, not a string")]),
        (None, [("data.referentiecomponenten", "must be a list of ids, not null")]),
        (["r1", 2, ""], [
            ("data.referentiecomponenten[1]", "must be a string, not a number"),
            ("data.referentiecomponenten[2]", "must not be empty"),
        ]),
    ],
)  # fmt: skip
def test_list_problems_name_the_item(value: Any, expected: list[tuple[str, str]]) -> None:
    assert _problems("applicatie", {**MINIMAL["applicatie"], "referentiecomponenten": value}) == expected


def test_every_problem_in_the_data_is_reported_at_once() -> None:
    data = {"id": "", "afnemer": 5, "status": None, "extra": 1}
    assert _fields(_problems("gebruik", data)) == [
        "data.id", "data.afnemer", "data.applicatie", "data.status", "data.extra",
    ]  # fmt: skip


@pytest.mark.parametrize(("data", "kind"), [([1], "a list"), (None, "null"), ("x", "a string")])
def test_data_that_is_not_an_object_is_rejected(data: Any, kind: str) -> None:
    assert _problems("applicatie", data) == [("data", f"must be a JSON applicatie object, not {kind}")]
    with pytest.raises(LandscapeDataError) as info:
        validate_landscape_data(ingetrokken_type("applicatie"), data)
    assert info.value.problems == [("data", f'must be a JSON object {{"id": …}}, not {kind}')]


@pytest.mark.parametrize(
    ("data", "problems"),
    [
        ({"id": "geb-1"}, None),
        ({}, [("data.id", "is required")]),
        ({"id": "geb-1", "naam": "x"}, [("data.naam", "is not a field of ingetrokken data; allowed: 'id'")]),
    ],
)
def test_ingetrokken_data_is_only_the_id(
    data: dict[str, Any], problems: list[tuple[str, str]] | None
) -> None:
    if problems is None:
        assert validate_landscape_data(ingetrokken_type("gebruik"), data) == Ingetrokken(id="geb-1")
    else:
        with pytest.raises(LandscapeDataError) as info:
            validate_landscape_data(ingetrokken_type("gebruik"), data)
        assert info.value.problems == problems


def test_landscape_data_error_is_a_value_error_that_lists_its_problems() -> None:
    error = LandscapeDataError([("data.status", "is required"), ("subject", "must equal data.id")])
    assert isinstance(error, ValueError)
    assert str(error) == "data.status: is required; subject: must equal data.id"
    assert error.to_problems(3) == [
        Problem(3, "data.status", "is required"),
        Problem(3, "subject", "must equal data.id"),
    ]


# -- other event types and type names ---------------------------------------------------


@pytest.mark.parametrize(
    "type_",
    [
        "nl.signalen.melding.gewijzigd.v1",
        "nl.softwarecatalogus.gebruik.vastgelegd.v2",
        "nl.softwarecatalogus.gebruik.vastgelegd",
        "nl.softwarecatalogus.gebruik.gewijzigd.v1",
        "nl.softwarecatalogus.module.vastgelegd.v1",
    ],
)
def test_other_event_types_pass_through_untouched(type_: str) -> None:
    assert parse_inbound_type(type_) is None
    assert validate_landscape_data(type_, {"anything": ["goes"]}) is None
    assert validate_landscape_data(type_, None) is None
    assert validate_landscape_event(_event(type_, {"anything": 1}, subject=None)) is None


@pytest.mark.parametrize(
    ("type_", "expected"),
    [
        *((f"nl.softwarecatalogus.{t}.vastgelegd.v1", (t, "vastgelegd")) for t in REQUIRED),
        *((f"nl.softwarecatalogus.{t}.ingetrokken.v1", (t, "ingetrokken")) for t in REQUIRED),
        ("nl.softwarecatalogus.gebruik.aangemaakt.v1", None),
        ("nl.softwarecatalogus.gebruik.vastgelegd.v1.extra", None),
        ("xnl.softwarecatalogus.gebruik.vastgelegd.v1", None),
        ("", None),
    ],
)
def test_parse_inbound_type(type_: str, expected: tuple[str, str] | None) -> None:
    assert parse_inbound_type(type_) == expected


def test_type_names_for_every_verb() -> None:
    assert vastgelegd_type("gebruik") == "nl.softwarecatalogus.gebruik.vastgelegd.v1"
    assert ingetrokken_type("gebruik") == "nl.softwarecatalogus.gebruik.ingetrokken.v1"
    assert aangemaakt_type("koppeling") == "nl.softwarecatalogus.koppeling.aangemaakt.v1"
    assert gewijzigd_type("koppeling") == "nl.softwarecatalogus.koppeling.gewijzigd.v1"
    assert verwijderd_type("standaard") == "nl.softwarecatalogus.standaard.verwijderd.v1"
    assert parse_derived_type(gewijzigd_type("organisatie")) == ("organisatie", "gewijzigd")
    assert parse_derived_type(vastgelegd_type("organisatie")) is None


@pytest.mark.parametrize(("objecttype", "verb"), [("module", "vastgelegd"), ("gebruik", "bijgewerkt")])
def test_type_names_refuse_unknown_object_types_and_verbs(objecttype: str, verb: str) -> None:
    with pytest.raises(ValueError, match="unknown landscape"):
        event_type(objecttype, verb)


def test_the_object_type_registry_and_the_schema_registry_agree() -> None:
    assert list(OBJECT_TYPES) == list(REQUIRED)
    assert OBJECT_TYPES == {
        "organisatie": Organisatie, "applicatie": Applicatie, "gebruik": Gebruik,
        "koppeling": Koppeling, "referentiecomponent": Referentiecomponent, "standaard": Standaard,
    }  # fmt: skip
    for name, model in OBJECT_TYPES.items():
        assert REGISTRY[name] is model
    assert REGISTRY["ingetrokken"] is Ingetrokken


# -- subject ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("kop-1", None),
        ("kop-2", ("subject", "must equal data.id, 'kop-1' (got 'kop-2')")),
        (None, ("subject", "is required for a landscape event: set it to data.id ('kop-1')")),
    ],
)
def test_check_subject(subject: str | None, expected: tuple[str, str] | None) -> None:
    koppeling = Koppeling.model_validate(MINIMAL["koppeling"])
    assert check_subject(subject, koppeling) == expected
    assert check_subject(subject, Ingetrokken(id="kop-1")) == expected


@pytest.mark.parametrize("verb", ["vastgelegd", "ingetrokken"])
def test_an_event_whose_subject_is_not_the_object_id_is_rejected(verb: str) -> None:
    data = MINIMAL["koppeling"] if verb == "vastgelegd" else {"id": "kop-1"}
    type_ = event_type("koppeling", verb)
    assert validate_landscape_event(_event(type_, data)) is not None
    with pytest.raises(LandscapeDataError) as info:
        validate_landscape_event(_event(type_, data, subject="kop-2"))
    assert _fields(info.value.problems) == ["subject"]


def test_an_event_reports_its_subject_problem_together_with_data_problems() -> None:
    event = _event(vastgelegd_type("koppeling"), {**MINIMAL["koppeling"], "type": "REST"}, subject=None)
    with pytest.raises(LandscapeDataError) as info:
        validate_landscape_event(event)
    assert _fields(info.value.problems) == ["data.type", "subject"]


# -- private fields and changes ---------------------------------------------------------


def test_private_fields_are_marked_in_the_model_and_the_schema_file() -> None:
    assert PRIVATE_FIELDS == {name: frozenset() for name in OBJECT_TYPES} | {
        "gebruik": frozenset({"interneAantekening"})
    }
    schema = json.loads((JSON_DIR / "gebruik.schema.json").read_text(encoding="utf-8"))
    assert schema["properties"]["interneAantekening"]["x-private"] is True
    assert [n for n, p in schema["properties"].items() if p.get("x-private")] == ["interneAantekening"]


OLD = {"id": "geb-1", "status": "Gepland", "versie": "1.0", "interneAantekening": "a", "gone": 1}


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (OLD, []),
        ({**OLD, "status": "In productie"}, [{"field": "status", "old": "Gepland", "new": "In productie"}]),
        ({**OLD, "interneAantekening": "b"}, []),
        ({**OLD, "extra": [1]}, [{"field": "extra", "old": None, "new": [1]}]),
        ({k: v for k, v in OLD.items() if k != "gone"}, [{"field": "gone", "old": 1, "new": None}]),
        ({**OLD, "versie": None, "status": "Uitgefaseerd", "interneAantekening": "b"}, [
            {"field": "status", "old": "Gepland", "new": "Uitgefaseerd"},
            {"field": "versie", "old": "1.0", "new": None},
        ]),
    ],
    ids=["unchanged", "changed", "ignored-private", "added", "removed", "sorted-by-field"],
)  # fmt: skip
def test_changed_fields(new: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    assert changed_fields(OLD, new, ignore=PRIVATE_FIELDS["gebruik"]) == expected


def test_changed_fields_on_canonical_dumps_treat_absent_as_none_and_lists_as_sets() -> None:
    old = Gebruik.model_validate({**MINIMAL["gebruik"], "referentiecomponenten": ["b", "a"]})
    same = Gebruik.model_validate({**MINIMAL["gebruik"], "referentiecomponenten": ["a", "b", "a"]})
    new = Gebruik.model_validate({**MINIMAL["gebruik"], "versie": "2.0", "interneAantekening": "x"})
    dump = BaseModel.model_dump
    ignore = PRIVATE_FIELDS["gebruik"]
    assert changed_fields(dump(old, mode="json"), dump(same, mode="json"), ignore=ignore) == []
    assert changed_fields(dump(old, mode="json"), dump(new, mode="json"), ignore=ignore) == [
        {"field": "referentiecomponenten", "old": ["a", "b"], "new": []},
        {"field": "versie", "old": None, "new": "2.0"},
    ]


def test_package_exports_exactly_the_public_api_of_its_modules() -> None:
    internal = {"PATTERN_MESSAGES", "koppeling_side_b_problem"}  # shared by the two modules only
    assert sorted(landscape.__all__) == sorted({*events.__all__, *models.__all__} - internal)
    for name in landscape.__all__:
        assert hasattr(landscape, name)
