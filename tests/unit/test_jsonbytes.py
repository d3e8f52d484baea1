"""``schemas.jsonbytes.dumps_compact`` gives the standard library's bytes (or its exception)
for every input, and leaves plain JSON data to orjson."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.ids import content_hash
from connectors.signalen.connector import digest
from schemas import jsonbytes
from schemas.envelope import CloudEvent
from schemas.jsonbytes import dumps_compact

STDLIB = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def outcome(encode: Any, value: Any) -> tuple[str, Any]:
    try:
        return "bytes", encode(value)
    except Exception as e:  # the exception is the outcome compared
        return type(e).__name__, str(e)


def stdlib(value: Any) -> bytes:
    return STDLIB.encode(value).encode()


scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: beyond 64 bits too
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()  # NaN, the infinities, subnormals, exponent forms
    | st.sampled_from([1e-7, 1.5e-5, 1e16, 1e22, 1e-320, -0.0, 0.0001, 123456789.123, 2.0**63])
    | st.text()
    | st.text(st.characters(codec=None, exclude_categories=()))  # lone surrogates, controls
    | st.sampled_from(["null", "1e-7", ",1e5", "NaN", "\u2028\u2029\x7f", "é😀", '"\\/'])
)
keys = st.text() | st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False)
json_like = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=8), inner, max_size=5)
        | st.dictionaries(keys, inner, max_size=3)
    ),
    max_leaves=30,
)


@settings(max_examples=1500, deadline=None)
@given(json_like)
def test_any_json_like_value_is_written_as_the_stdlib_writes_it(value: Any) -> None:
    assert outcome(dumps_compact, value) == outcome(stdlib, value)


class Colour(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 2


class Kind(enum.StrEnum):
    A = "a"


class Ratio(float):
    pass


class Count(int):
    pass


class Ordered(dict[str, Any]):
    pass


@dataclasses.dataclass
class Point:
    x: int = 1


def _cycle() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


EDGE_CASES = [
    float("nan"), {"a": [1, float("inf")]}, [float("-inf")], {"x": None, "y": float("nan")},
    2**64, -(2**63) - 1, 2**63, -(2**63), {"big": [2**200]},
    1e-7, {"small": 1.5e-5}, 1e16, 1e22, 5e-324, 1.7976931348623157e308, -0.0,
    uuid.UUID(int=7), {"id": uuid.UUID(int=7)}, Colour.RED, [Colour.RED], Level.HIGH, Kind.A,
    datetime.date(2026, 11, 30), datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC), decimal.Decimal("1.5"),
    b"bytes", Point(), Ratio(1.5), Count(3), Ordered(a=1), {2: "a", True: "b", None: "c", 1.5: "d"},
    "\ud800", {"\udfff": 1}, "\x00\x1f\x7f\u2028", _cycle(), _deep(300), _deep(200),
    {"k": (1, 2, [3, (4,)])}, {}, [], "", {"nested": {"deeper": {"null": None}}},
]  # fmt: skip


@pytest.mark.parametrize("value", EDGE_CASES, ids=lambda v: type(v).__name__)
def test_edge_cases_write_or_raise_as_the_stdlib_does(value: Any) -> None:
    assert outcome(dumps_compact, value) == outcome(stdlib, value)


def test_plain_json_data_is_written_by_orjson_without_the_stdlib(monkeypatch: pytest.MonkeyPatch) -> None:
    melding = {
        "id": 1, "status": {"state": "m", "text": None, "send_email": False},
        "location": {"geometrie": {"coordinates": [4.8932, 52.3731]}}, "text": "Melding één",
    }  # fmt: skip
    expected = stdlib(melding)

    class Refusing:
        def encode(self, value: Any) -> str:
            raise AssertionError("the stdlib encoder was used for plain data")

    monkeypatch.setattr(jsonbytes, "_ENCODER", Refusing())
    assert dumps_compact(melding) == expected


def test_an_event_body_keeps_its_bytes() -> None:
    event = CloudEvent(
        specversion="1.0", id="e-1", source="urn:test", type="nl.test.ding.v1", subject="1",
        datacontenttype="application/json", data={"n": 1e-7, "t": "één", "x": None, "big": 2**63},
    )  # fmt: skip
    assert event.data_bytes() == stdlib(event.data)
    assert event.to_json_bytes() == stdlib(event.to_structured())


parsed = st.recursive(  # what a JSON parser makes: no NaN, no infinities, no other types
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=1000, deadline=None)
@given(st.dictionaries(st.text(max_size=8), parsed, max_size=6))
def test_the_signalen_digest_equals_content_hash_for_parsed_data(value: dict[str, Any]) -> None:
    assert digest(value) == content_hash(value)
