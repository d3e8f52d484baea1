"""Event data every later stage can store and send: one check, the path of the offending value,
and the same answer in every content mode (decoding errors included: EnvelopeError, never
anything else)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import CloudEvent, EnvelopeError, from_kafka_record, parse_batch, parse_binary, parse_structured
from schemas.limits import MAX_DATA_DEPTH, data_problem, parsed_data_problem

MAX = 1_048_576
ATTRS = {"specversion": "1.0", "id": "e-1", "source": "urn:nld:test", "type": "nl.test.event.v1"}


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("data", "path", "reason"),
    [
        ({"a": {"b": [0, 1, 2, "x\u0000"]}}, "data.a.b[3]", "U+0000"),
        ({"a\u0000": 1}, 'data["a\\u0000"]', "key contains U+0000"),
        ({"s": "\ud800"}, "data.s", "surrogate"),
        ({"\udfff": 1}, 'data["\\udfff"]', "surrogate"),
        ({"n": 2**64}, "data.n", "64-bit"),
        ([-(2**63) - 1], "data[0]", "64-bit"),
        ({"x": float("inf")}, "data.x", "not a finite number"),
        ({"x": [float("nan")]}, "data.x[0]", "not a finite number"),
        ({"with space": {"k": b"raw"}}, 'data["with space"].k', "bytes is not a JSON value"),
        ({1: "x"}, "data", "keys must be strings"),
        (2**64, "data", "64-bit"),
        ("\u0000", "data", "U+0000"),
    ],
)
def test_data_problem_names_the_path_of_the_offending_value(data: Any, path: str, reason: str) -> None:
    found = data_problem(data)
    assert found is not None
    assert found[0] == path
    assert reason in found[1]


def test_nesting_is_allowed_up_to_the_limit_and_refused_beyond() -> None:
    assert data_problem(nested(MAX_DATA_DEPTH - 1)) is None  # 63 objects around a scalar
    assert data_problem(nested(MAX_DATA_DEPTH)) is None
    found = data_problem(nested(MAX_DATA_DEPTH + 1))
    assert found is not None and "nests deeper than 64" in found[1]
    assert found[0] == "data" + ".a" * MAX_DATA_DEPTH


def test_nesting_far_beyond_any_recursion_limit_is_refused_without_recursing() -> None:
    assert data_problem(nested(100_000)) is not None


@pytest.mark.parametrize(
    "data",
    [
        {"int": 2**64 - 1, "neg": -(2**63), "float": 1.5e308, "text": "é ü 日本 😀", "none": None},
        [True, False, 0, -0.0, "", [], {}],
        ("tuple", ["of", {"json": 1}]),
        nested(MAX_DATA_DEPTH),
    ],
)
def test_what_orjson_and_postgresql_can_store_passes(data: Any) -> None:
    assert data_problem(data) is None
    orjson.dumps([{"event": {"data": data}}])  # the projector's row shape, as bulk.py writes it


def structured(data_json: str, **extra: str) -> bytes:
    head = json.dumps({**ATTRS, **extra})[:-1]
    return f'{head}, "data": {data_json}}}'.encode()


def binary_headers(**extra: str) -> dict[str, str]:
    return {f"ce-{k}": v for k, v in {**ATTRS, **extra}.items()} | {"content-type": "application/json"}


POISON = {
    # Each was a 202 then a dead projector, or a 500, before publish checked data.
    "deep-252": ('{"a":' * 252 + "1" + "}" * 252, "data" + ".a" * MAX_DATA_DEPTH, "nests deeper"),
    "deep-990": ("[" * 990 + "]" * 990, None, "nests"),
    "int-2**64": ('{"n": 18446744073709551616}', "data.n", "64-bit"),
    "surrogate": ('{"s": ["\\ud800"]}', "data.s[0]", "surrogate"),
    "1e999": ('{"x": 1e999}', "data.x", "not a finite number"),
    "nul": ('{"a": {"b": "x\\u0000"}}', "data.a.b", "U+0000"),
    "nul-key": ('{"a\\u0000": 1}', 'data["a\\u0000"]', "U+0000"),
}


def problems_of(parse: Any) -> list[tuple[str, str]]:
    with pytest.raises(EnvelopeError) as caught:
        parse()
    assert type(caught.value) is EnvelopeError  # a 400, not a 413
    return [(p.field, p.message) for p in caught.value.problems]


@pytest.mark.parametrize("name", POISON)
def test_poison_data_is_refused_with_its_path_in_every_content_mode(name: str) -> None:
    data_json, path, reason = POISON[name]
    modes = {
        "structured": lambda: parse_structured(structured(data_json), max_bytes=MAX),
        "batch": lambda: parse_batch(b"[" + structured(data_json) + b"]", max_bytes=MAX),
        "binary": lambda: parse_binary(binary_headers(), data_json.encode(), max_bytes=MAX),
        "kafka": lambda: from_kafka_record(
            None, data_json.encode(), [(f"ce_{k}", v.encode()) for k, v in ATTRS.items()]
        ),
    }
    for mode, parse in modes.items():
        ((field, message),) = problems_of(parse)
        assert reason in message, (mode, message)
        if path is not None:
            assert field == path, mode


def test_invalid_utf8_and_lone_surrogates_in_attributes_are_envelope_errors() -> None:
    problems_of(lambda: parse_structured(b'{"id": "\xff"}', max_bytes=MAX))
    ((field, message),) = problems_of(lambda: parse_structured(structured("1", ext="\ud800"), max_bytes=MAX))
    assert (field, "surrogate" in message) == ("ext", True)
    ((field, message),) = problems_of(
        lambda: parse_structured(structured("1", subject="\ud800"), max_bytes=MAX)
    )
    assert (field, "surrogate" in message) == ("subject", True)


def test_python_callers_get_the_same_check() -> None:
    with pytest.raises(ValueError, match="64-bit"):
        CloudEvent(**ATTRS, data={"n": 2**64})


def test_extension_attributes_beyond_the_cap_are_refused_in_every_mode() -> None:
    many = {f"x{i}": "1" for i in range(1400)}
    for parse in (
        lambda: parse_structured(json.dumps({**ATTRS, **many}).encode(), max_bytes=MAX),
        lambda: parse_batch(json.dumps([{**ATTRS, **many}]).encode(), max_bytes=MAX),
        lambda: parse_binary(binary_headers(**many), b"", max_bytes=MAX),
    ):
        ((_, message),) = problems_of(parse)
        assert "1400 extension attributes, more than the limit of 32" in message
        assert "KOPPELHUB_MAX_EXTENSION_ATTRIBUTES" in message
    at_cap = {f"x{i}": "1" for i in range(32)}
    assert parse_binary(binary_headers(**at_cap), b"", max_bytes=MAX).model_extra == at_cap
    assert parse_structured(json.dumps({**ATTRS, **many}).encode(), max_bytes=MAX, max_extensions=1400)


_any_text = st.text(st.characters(codec=None, exclude_categories=()))  # U+0000, lone surrogates
_parsed = st.recursive(  # what a JSON parser makes, and what code adds (any text, any integer)
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**63) - 2, max_value=2**64 + 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _any_text
    | st.sampled_from(["\\u0000", "x\x00", "[{[{", "\ud800"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(codec=None, exclude_categories=()), max_size=4), inner)
    ),
    max_leaves=30,
)


@settings(max_examples=1500, deadline=None)
@given(_parsed)
def test_the_check_of_parsed_data_gives_the_verdict_of_data_problem(value: Any) -> None:
    assert parsed_data_problem(value) == data_problem(value)


@pytest.mark.parametrize("depth", [MAX_DATA_DEPTH - 1, MAX_DATA_DEPTH, MAX_DATA_DEPTH + 1, 300])
def test_the_check_of_parsed_data_gives_the_verdict_of_data_problem_at_every_depth(depth: int) -> None:
    for value in (nested(depth), [nested(depth)], {"s": "[" * 100, "t": nested(depth)}):
        assert parsed_data_problem(value) == data_problem(value)
