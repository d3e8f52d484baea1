"""A pass-through event written straight into the Kafka binding
(:func:`connectors.events.passthrough_record`) is the record the runner wrote before, through
the event (``to_kafka_record(CloudEvent.model_construct(...))``), byte for byte: consumers,
the write-ahead log and the projector's dedupe see no difference."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import ConnectorContext, Record
from connectors.events import passthrough_record
from connectors.registry import create
from schemas.bindings import KafkaRecord, to_kafka_record
from schemas.envelope import CloudEvent
from schemas.jsonbytes import dumps_parsed
from tests.unit.test_signalen_digest import MELDING

ID = "0b6f1a0e-3c1d-5e8f-9a2b-4c5d6e7f8a9b"
SOURCE = "urn:nl:koppelhub:test:connector:42"
ORG = "org-1"
WEST = timezone(-timedelta(hours=3))


def through_the_event(attrs: dict[str, Any]) -> KafkaRecord:
    """What :class:`hub.services.passthrough.PassThroughRun` published before the direct path."""
    event = CloudEvent.model_construct(
        specversion="1.0", id=ID, source=SOURCE, datacontenttype="application/json", organisatie=ORG, **attrs
    )
    return to_kafka_record(event)


def direct(attrs: dict[str, Any], *, parsed: bool) -> KafkaRecord:
    return passthrough_record(attrs, id=ID, source=SOURCE, organisatie=ORG, parsed=parsed)


def signalen_events(tmp_path: Path) -> list[dict[str, Any]]:
    """The Signalen connector's own attributes: aangemaakt and gewijzigd, with and without a
    configured source, a time in UTC and with an offset, and none."""
    ctx = ConnectorContext(organisatie=ORG, scope="42", work_dir=tmp_path)
    config = {"url": "https://signalen.example.org", "auth": {"token": "t"}}
    plain = create("signalen", config, ctx)
    sourced = create("signalen", {**config, "source": "urn:nl:gemeente:signalen"}, ctx)
    raw = orjson.loads(orjson.dumps(MELDING))
    out = []
    for stamp in ("2026-11-30T01:02:03.456789+01:00", "2026-11-30T00:02:03Z", None, "not a time"):
        record = Record({**raw, "updated_at": stamp} if stamp else raw)
        item = plain.item(record)
        before = {**item.fields, "status": {"state": "i", "state_display": "In behandeling", "text": None}}
        for connector in (plain, sourced):
            for attrs in (connector.event(item, None), connector.event(item, before)):
                attrs.pop("source", None)  # the runner takes it as the source (its own test)
                out.append(attrs)
    return out


def test_signalen_events_are_written_as_through_the_event(tmp_path: Path) -> None:
    events = signalen_events(tmp_path)
    assert any("time" in a and a["time"].utcoffset() == timedelta(hours=1) for a in events)
    assert any(a["data"].get("wijzigingen") for a in events)
    for attrs in events:
        assert direct(attrs, parsed=True) == through_the_event(attrs)
        assert direct(attrs, parsed=False) == through_the_event(attrs)


@pytest.mark.parametrize(
    "attrs",
    [
        {"type": "nl.x.y.v1", "subject": "7", "data": {**MELDING, "z": 1e16, "a": 1e-7, "s": 1.5e-5}},
        {"type": "nl.x.y.v1", "subject": "7", "data": {"big": 2**70}},  # orjson refuses
        {"type": "nl.x.y.v1", "subject": "7", "partitionkey": "", "data": "text"},  # an empty key
        {"type": "nl.x.y.v1", "data": None},  # no key, no data: an empty value
        {
            "type": "nl.x.y.v1",
            "sequence": "0001",
            "dataschema": "https://s.example.org/x.json",
            "dataref": "https://x.example.org/7",
            "time": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            "subject": "7",
            "data": [1, 2.5, None],
        },
        {"type": "nl.x.y.v1", "subject": "7", "time": datetime(2026, 1, 2, tzinfo=WEST)},
        # Not the plain shape: through the event itself.
        {"type": "nl.x.y.v1", "subject": "7", "retries": 3, "urgent": True, "data": {"a": 1}},
    ],
)
def test_every_attribute_shape_is_written_as_through_the_event(attrs: dict[str, Any]) -> None:
    assert direct(attrs, parsed=False) == through_the_event(attrs)
    if not isinstance(attrs.get("data"), dict) or "big" not in attrs["data"]:
        assert direct(attrs, parsed=True) == through_the_event(attrs)


STDLIB = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
parsed_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e-7, 1.5e-5, 1e16, 1e22, 1e-320, -0.0, 0.0001, 2.0**63, 1e300])
    | st.text()
    | st.sampled_from(["1e-7", ",1e5", "[0.00001", "\u2028\u2029\x7f\x00", "é😀", '"\\/']),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=1000, deadline=None)
@given(parsed_values)
def test_what_orjson_parsed_is_written_as_the_stdlib_writes_it(value: Any) -> None:
    parsed = orjson.loads(orjson.dumps(value))
    assert dumps_parsed(parsed) == STDLIB.encode(parsed).encode()


def test_an_integer_beyond_64_bits_from_jsonb_is_written_as_the_stdlib_writes_it() -> None:
    value = {"id": 2**70, "at": [1e-5]}
    assert dumps_parsed(value) == STDLIB.encode(value).encode()
