"""Property tests (hypothesis): the parsers that take outside input either succeed or refuse
with their own error, never with anything else, whatever the input; round trips hold."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.ameff.parse import parse_ameff
from connectors.base import SourceRefused
from connectors.tabular.formulas import is_formula_like, neutralise, restore
from connectors.tabular.reader import read_csv, read_xlsx
from connectors.xmltext import xml_text
from schemas import EnvelopeError, EventTooLarge, parse_batch, parse_structured
from subscriptions.filters import dump_filters, matches_all, parse_filters

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
ATTRIBUTES = [
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "data",
    "dataschema",
]
envelopes = st.dictionaries(st.sampled_from(ATTRIBUTES) | st.text(max_size=12), json_values, max_size=9)


def _tmp(suffix: str, body: bytes) -> Path:
    handle = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)
    with handle:
        handle.write(body)
    return Path(handle.name)


@PROPERTY
@given(st.one_of(st.binary(max_size=300), envelopes.map(lambda d: json.dumps(d).encode())))
def test_the_envelope_parser_accepts_or_refuses_with_an_envelope_error(body: bytes) -> None:
    for parse in (parse_structured, parse_batch):
        try:
            parse(body, max_bytes=4096)
        except (EnvelopeError, EventTooLarge):
            pass


@PROPERTY
@given(
    envelopes.map(
        lambda d: {
            **d,
            "specversion": "1.0",
            "id": "x",
            "source": "urn:nld:test",
            "type": "nl.test.v1",
        }
    )
)
def test_an_envelope_that_parses_is_accepted_again_as_it_dumps(event: dict[str, Any]) -> None:
    try:
        parsed = parse_structured(json.dumps(event).encode(), max_bytes=4096)
    except (EnvelopeError, EventTooLarge):
        return
    again = parse_structured(parsed.model_dump_json(exclude_none=True).encode(), max_bytes=8192)
    assert again.id == parsed.id and again.type == parsed.type


filters = st.recursive(
    st.fixed_dictionaries(
        {},
        optional={
            "exact": st.dictionaries(st.text(max_size=8), st.text(max_size=8) | json_values, max_size=2),
            "prefix": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2),
            "suffix": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2),
        },
    )
    | json_values,
    lambda inner: st.dictionaries(
        st.sampled_from(["all", "any", "not"]), st.lists(inner, max_size=3) | inner
    ),
    max_leaves=8,
)


@PROPERTY
@given(st.lists(filters, max_size=3), st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=5))
def test_filters_parse_or_refuse_with_a_value_error_and_valid_ones_evaluate(
    raw: list[Any], attributes: dict[str, str]
) -> None:
    try:
        parsed = parse_filters(raw)
    except ValueError:
        return
    result = matches_all(parsed, attributes)
    assert matches_all(parse_filters(dump_filters(parsed)), attributes) == result  # dump round trip


@PROPERTY
@given(st.binary(max_size=400) | st.text(max_size=300).map(lambda t: t.encode()))
def test_the_csv_reader_reads_or_refuses_any_file(body: bytes) -> None:
    path = _tmp(".csv", body)
    try:
        list(read_csv(path))
    except SourceRefused:
        pass
    finally:
        path.unlink()


@PROPERTY
@given(st.binary(max_size=400))
def test_the_xlsx_reader_refuses_what_is_not_a_workbook(body: bytes) -> None:
    path = _tmp(".xlsx", body)
    try:
        with pytest.raises(SourceRefused):  # 400 bytes cannot hold a workbook's parts
            list(read_xlsx(path))
    finally:
        path.unlink()


XML_PARTS = st.sampled_from(
    [
        '<?xml version="1.0"?>',
        '<model xmlns="http://www.opengroup.org/xsd/archimate/3.0/">',
        "</model>",
        '<elements><element identifier="id-1" xsi:type="ApplicationComponent" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><name>A</name></element></elements>',
        "<relationships>",
        "</relationships>",
        "<!DOCTYPE x [<!ENTITY a 'b'>]>",
        "&a;",
        "<name>",
        "</name>",
        "<properties/>",
    ]
)


@PROPERTY
@given(
    st.lists(XML_PARTS | st.text(max_size=20), max_size=8).map("".join) | st.binary(max_size=200).map(repr)
)
def test_the_ameff_parser_parses_or_refuses_any_file(text: str) -> None:
    path = _tmp(".xml", text.encode("utf-8", "surrogatepass"))
    try:
        parse_ameff(path, max_bytes=1 << 20)
    except SourceRefused:
        pass
    finally:
        path.unlink()


@PROPERTY
@given(st.text())
def test_a_neutralised_cell_is_never_formula_like_and_restores_exactly(cell: str) -> None:
    assert not is_formula_like(neutralise(cell))
    assert restore(neutralise(cell)) == cell


@PROPERTY
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=())))
def test_any_text_made_xml_text_is_written_and_read_back_by_an_xml_parser(text: str) -> None:
    from xml.etree import ElementTree as ET

    safe = xml_text(text)
    element = ET.Element("v")
    element.text = safe
    read = ET.fromstring(ET.tostring(element)).text or ""
    assert read == safe.replace("\r\n", "\n").replace("\r", "\n")  # XML's line-end normalisation
    assert xml_text(safe) == safe and len(safe) == len(text)
