"""The extension value rule at its edges (schemas.extension_values): a string without control
characters or lone surrogates, a 32-bit integer or a boolean; every other value refused with
the reason, the same through validate_event and through a Kafka record's decode."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import CloudEvent, EnvelopeError, validate_event
from schemas.bindings import from_kafka_record, to_kafka_record

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def event(**extensions: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "urn:nld:oin:00000001234567890000:systeem:zaaksysteem",
        "type": "nl.softwarecatalogus.gebruik.gewijzigd.v1",
        **extensions,
    }


ACCEPTED: dict[str, Any] = {
    "traceparent": TRACEPARENT,
    "empty_text": "",
    "non_ascii_text": "gemeente ß é 漢",
    "no_break_space": "\xa0",  # just past the C1 control range
    "int32_max": 2**31 - 1,
    "int32_min": -(2**31),
    "true": True,
    "false": False,
}


@pytest.mark.parametrize("value", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_extension_values_of_the_rule_are_kept_with_their_type(value: Any) -> None:
    parsed = validate_event(event(ext=value))
    assert parsed.model_extra == {"ext": value}
    assert type(parsed.model_extra["ext"]) is type(value)  # a bool stays a bool, not an int


REFUSED: dict[str, tuple[Any, str]] = {
    "newline": ("a\nb", "must not contain control characters"),
    "nul": ("a\x00b", "must not contain control characters"),
    "delete": ("a\x7f", "must not contain control characters"),
    "c1_control": ("a\x9f", "must not contain control characters"),
    "lone_surrogate": ("a\ud800b", "contains a lone UTF-16 surrogate, which is not valid Unicode"),
    "int32_max_plus_one": (2**31, "extension integers must fit in 32 bits (CloudEvents Integer)"),
    "int32_min_minus_one": (-(2**31) - 1, "extension integers must fit in 32 bits (CloudEvents Integer)"),
    "float": (1.5, "extension values must be a string, integer or boolean, not float"),
    "null": (None, "extension values must be a string, integer or boolean, not null"),
    "object": ({"a": 1}, "extension values must be a string, integer or boolean, not dict"),
    "list": ([1], "extension values must be a string, integer or boolean, not list"),
}


@pytest.mark.parametrize(("value", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_other_extension_values_are_refused_with_the_reason(value: Any, message: str) -> None:
    with pytest.raises(EnvelopeError) as exc:
        validate_event(event(ext=value, other="fine"), index=3)
    assert [(p.index, p.field, p.message) for p in exc.value.problems] == [(3, "ext", message)]


def test_an_extension_problem_is_reported_with_the_event_s_other_problems() -> None:
    with pytest.raises(EnvelopeError) as exc:
        validate_event(event(ext="a\tb", big=2**40, id=""))
    assert sorted(p.field for p in exc.value.problems) == ["big", "ext", "id"]


def test_a_kafka_record_with_a_control_character_in_an_extension_is_refused_on_decode() -> None:
    record = to_kafka_record(validate_event(event(traceparent=TRACEPARENT)))
    headers = [(n, b"00-\n" if n == "ce_traceparent" else v) for n, v in record.headers]
    with pytest.raises(EnvelopeError) as exc:
        from_kafka_record(record.key, record.value, headers)
    assert [(p.field, p.message) for p in exc.value.problems] == [
        ("traceparent", "must not contain control characters")
    ]


def test_a_kafka_record_carrying_its_trace_context_decodes_to_the_same_event() -> None:
    sent = validate_event(event(traceparent=TRACEPARENT, retries=3, urgent=False, data={"a": 1}))
    record = to_kafka_record(sent)
    assert ("ce_traceparent", TRACEPARENT.encode()) in record.headers
    assert from_kafka_record(record.key, record.value, record.headers) == sent


def test_a_direct_model_validation_refuses_a_bad_extension_too() -> None:
    with pytest.raises(ValidationError):
        CloudEvent.model_validate(event(ext="a\rb"))


def test_the_json_schema_allows_a_string_integer_or_boolean_extension() -> None:
    schema = json.loads(json.dumps(CloudEvent.model_json_schema()))
    assert schema["additionalProperties"] == {
        "anyOf": [{"type": "boolean"}, {"type": "integer"}, {"type": "string"}]
    }
