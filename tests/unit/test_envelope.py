"""The CloudEvents envelope under the NL GOV profile: what is accepted and why not."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import schemas
from schemas import (
    DEFAULT_MAX_EVENT_BYTES,
    CloudEvent,
    EnvelopeError,
    EventTooLarge,
    Problem,
    parse_batch,
    parse_binary,
    parse_structured,
    validate_event,
)

MAX = DEFAULT_MAX_EVENT_BYTES
SOURCE = "urn:nld:oin:00000001234567890000:systeem:zaaksysteem"
TYPE = "nl.softwarecatalogus.gebruik.gewijzigd.v1"


def event(**changes: Any) -> dict[str, Any]:
    """A valid structured event with ``changes`` applied; a value of ... removes it."""
    raw: dict[str, Any] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": SOURCE,
        "type": TYPE,
        "subject": "gebruik/42",
        "time": "2024-05-01T12:00:00Z",
        "datacontenttype": "application/json",
        "data": {"gebruik": 42},
    }
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not ...}


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def fields_of(exc: pytest.ExceptionInfo[EnvelopeError]) -> list[tuple[int | None, str]]:
    return [(p.index, p.field) for p in exc.value.problems]


GOOD = {
    "minimal": {"specversion": "1.0", "id": "1", "source": "/mycontext", "type": "a.b"},
    "full_nl_gov": event(
        dataref="https://api.example.nl/gebruik/42",
        dataschema="https://schemas.example.nl/gebruik.json",
        sequence="00000000000000000042",
        partitionkey="org-1",
    ),
    "urn_source": event(source=SOURCE),
    "relative_source": event(source="/mycontext"),
    "https_source": event(source="https://zaken.example.nl/api/v1?x=%20y#frag"),
    "type_with_hyphens": event(type="nl.vng.zaak-status.gewijzigd"),
    "time_with_offset": event(time="2024-05-01T14:00:00+02:00"),
    "time_with_fraction": event(time="2024-05-01T12:00:00.123456Z"),
    "time_lowercase_t_z": event(time="2024-05-01t12:00:00z"),
    "extensions_str_int_bool": event(traceparent="00-a-b-01", retries=3, urgent=False),
    "twenty_char_extension": event(abcdefghij0123456789="x"),
    "data_base64": event(data=..., datacontenttype="image/png", data_base64="iVBORw0KGgo="),
    "string_data_xml": event(datacontenttype="application/xml", data="<a/>"),
    "null_optional_attribute": event(subject=None),
}


@pytest.mark.parametrize("raw", GOOD.values(), ids=GOOD.keys())
def test_valid_events_are_accepted(raw: dict[str, Any]) -> None:
    parsed = parse_structured(body(raw), max_bytes=MAX)
    assert parsed.id == raw["id"]
    assert parse_structured(parsed.to_json_bytes(), max_bytes=MAX) == parsed


BAD = {
    "missing_specversion": (event(specversion=...), "specversion", "missing"),
    "missing_id": (event(id=...), "id", "missing"),
    "missing_source": (event(source=...), "source", "missing"),
    "missing_type": (event(type=...), "type", "missing"),
    "specversion_0_3": (event(specversion="0.3"), "specversion", "1.0"),
    "specversion_number": (event(specversion=1.0), "specversion", "1.0"),
    "empty_id": (event(id=""), "id", "empty"),
    "numeric_id": (event(id=7), "id", "string"),
    "empty_subject": (event(subject=""), "subject", "empty"),
    "id_with_newline": (event(id="a\nb"), "id", "control"),
    "type_with_space": (event(type="Gebruik Gewijzigd"), "type", "reverse-DNS"),
    "type_one_segment": (event(type="foo"), "type", "reverse-DNS"),
    "type_trailing_dot": (event(type="nl.gebruik."), "type", "reverse-DNS"),
    "type_uppercase": (event(type="nl.Gebruik.gewijzigd"), "type", "reverse-DNS"),
    "type_underscore": (event(type="nl.gebruik_x.gewijzigd"), "type", "reverse-DNS"),
    "source_empty": (event(source=""), "source", "empty"),
    "source_with_space": (event(source="urn:nld:my system"), "source", "URI"),
    "source_with_newline": (event(source="/a\n"), "source", "URI"),
    "source_non_ascii": (event(source="/gemeente/ß"), "source", "percent-encoded"),
    "source_bad_scheme": (event(source="1urn:x"), "source", "scheme"),
    "source_bad_percent": (event(source="/a%zz"), "source", "URI"),
    "dataschema_relative": (event(dataschema="/schema.json"), "dataschema", "absolute"),
    "time_date_only": (event(time="2024-01-01"), "time", "RFC 3339"),
    "time_naive": (event(time="2024-01-01T12:00:00"), "time", "RFC 3339"),
    "time_words": (event(time="yesterday"), "time", "RFC 3339"),
    "time_impossible_date": (event(time="2024-02-30T12:00:00Z"), "time", "valid date"),
    "time_epoch_number": (event(time=1714564800), "time", "RFC 3339"),
    "uppercase_name": (event(Tenant="x"), "Tenant", "lowercase"),
    "underscore_name": (event(my_ext="x"), "my_ext", "lowercase"),
    "name_too_long": (event(abcdefghij01234567890="x"), "abcdefghij01234567890", "1-20"),
    "object_extension": (event(tenant={"a": 1}), "tenant", "not dict"),
    "list_extension": (event(tenant=[1]), "tenant", "not list"),
    "null_extension": (event(tenant=None), "tenant", "not null"),
    "float_extension": (event(weight=1.5), "weight", "not float"),
    "int64_extension": (event(big=2**40), "big", "32 bits"),
    "data_and_data_base64": (event(data_base64="AAAA"), "data", "not both"),
    "bad_base64": (event(data=..., data_base64="not base64!"), "data_base64", "base64"),
    "numeric_sequence": (event(sequence=42), "sequence", "string"),
    # Identity and ordering attributes are indexed: longer ones could be accepted, never stored.
    "id_too_long": (event(id="x" * 513), "id", "at most 512"),
    "source_too_long": (event(source="urn:" + "x" * 509), "source", "at most 512"),
    "subject_too_long": (event(subject="s" * 513), "subject", "at most 512"),
    "partitionkey_too_long": (event(partitionkey="k" * 513), "partitionkey", "at most 512"),
}


@pytest.mark.parametrize(("raw", "field", "phrase"), BAD.values(), ids=BAD.keys())
def test_invalid_events_name_the_field_and_reason(raw: dict[str, Any], field: str, phrase: str) -> None:
    with pytest.raises(EnvelopeError) as exc:
        parse_structured(body(raw), max_bytes=MAX)
    assert not isinstance(exc.value, EventTooLarge)
    matching = [p for p in exc.value.problems if p.field == field]
    assert matching, exc.value.problems
    assert phrase in matching[0].message
    assert matching[0].index is None


def test_every_problem_of_one_event_is_reported() -> None:
    raw = event(id=..., type="Bad Type", Tenant="x", time="yesterday")
    with pytest.raises(EnvelopeError) as exc:
        parse_structured(body(raw), max_bytes=MAX)
    assert sorted(f for _, f in fields_of(exc)) == ["Tenant", "id", "time", "type"]


def test_messages_do_not_leak_pydantic_jargon() -> None:
    with pytest.raises(EnvelopeError) as exc:
        parse_structured(body(event(type="Gebruik Gewijzigd", id=...)), max_bytes=MAX)
    text = str(exc.value)
    assert "Value error" not in text and "pydantic" not in text
    assert "event.type: 'Gebruik Gewijzigd' is not a reverse-DNS event type" in text
    assert "event.id: required attribute is missing" in text


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"{", b'{"a": NaN}', b"\xff\xfe", b"[]", b'"text"', b"null"],
    ids=["text", "truncated", "nan", "not_utf8", "array", "string", "null"],
)
def test_structured_body_that_is_not_one_json_object_is_rejected(payload: bytes) -> None:
    with pytest.raises(EnvelopeError) as exc:
        parse_structured(payload, max_bytes=MAX)
    assert fields_of(exc) == [(None, "")]


def test_batch_reports_every_bad_event_by_index() -> None:
    raw = [event(id="a"), event(id="b", type="foo"), event(id="c"), event(id="d", time="x")]
    with pytest.raises(EnvelopeError) as exc:
        parse_batch(body(raw), max_bytes=MAX)
    assert fields_of(exc) == [(1, "type"), (3, "time")]
    assert "event[1].type" in str(exc.value)


def test_batch_of_valid_events_keeps_order() -> None:
    raw = [event(id=str(i)) for i in range(5)]
    assert [e.id for e in parse_batch(body(raw), max_bytes=MAX)] == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("payload", "phrase"),
    [(b"[]", "at least one"), (b"{}", "array"), (b"[1]", "JSON object"), (b"nope", "JSON")],
    ids=["empty", "object", "number_item", "not_json"],
)
def test_malformed_batches_are_rejected(payload: bytes, phrase: str) -> None:
    with pytest.raises(EnvelopeError) as exc:
        parse_batch(payload, max_bytes=MAX)
    assert phrase in exc.value.problems[0].message


def test_event_over_the_size_limit_is_too_large() -> None:
    raw = event(data={"blob": "x" * 2000})
    size = len(json.dumps(raw, separators=(",", ":")))
    assert parse_structured(body(raw), max_bytes=size).id == "evt-1"
    with pytest.raises(EventTooLarge) as exc:
        parse_structured(body(raw), max_bytes=size - 1)
    assert fields_of(exc) == [(None, "")]
    assert str(size) in exc.value.problems[0].message


def test_size_is_measured_on_compact_json_not_on_whitespace() -> None:
    raw = event()
    pretty = json.dumps(raw, indent=8).encode()
    compact = len(json.dumps(raw, separators=(",", ":")))
    assert len(pretty) > compact
    assert parse_structured(pretty, max_bytes=compact).id == "evt-1"


def test_batch_with_only_oversized_events_is_too_large() -> None:
    raw = [event(id="a"), event(id="b", data="x" * 500)]
    with pytest.raises(EventTooLarge) as exc:
        parse_batch(body(raw), max_bytes=400)
    assert fields_of(exc) == [(1, "")]


def test_batch_mixing_oversized_and_invalid_events_is_a_plain_envelope_error() -> None:
    raw = [event(id="a", type="foo"), event(id="b", data="x" * 500)]
    with pytest.raises(EnvelopeError) as exc:
        parse_batch(body(raw), max_bytes=400)
    assert not isinstance(exc.value, EventTooLarge)
    assert fields_of(exc) == [(0, "type"), (1, "")]


def binary_headers(**extra: str) -> dict[str, str]:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "evt-1",
        "ce-source": SOURCE,
        "ce-type": TYPE,
    }
    headers.update(extra)
    return headers


def test_binary_mode_percent_decodes_header_values() -> None:
    headers = binary_headers(**{"ce-subject": "stra%C3%9Fe%201", "Ce-Tenant": "gem%2Fx"})
    headers["CE-TIME"] = "2024-05-01T14%3A00%3A00%2B02%3A00"
    parsed = parse_binary(headers, b"", max_bytes=MAX)
    assert parsed.subject == "straße 1"
    assert parsed.model_extra == {"tenant": "gem/x"}
    assert parsed.time == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert parsed.data is None and parsed.data_base64 is None


@pytest.mark.parametrize("content_type", ["application/json", "application/vnd.gemeente+json; charset=utf-8"])
def test_binary_mode_json_body_becomes_data(content_type: str) -> None:
    headers = {**binary_headers(), "Content-Type": content_type}
    parsed = parse_binary(headers, b'{"gebruik": 42}', max_bytes=MAX)
    assert parsed.data == {"gebruik": 42}
    assert parsed.datacontenttype == content_type
    assert parsed.data_bytes() == b'{"gebruik":42}'


@pytest.mark.parametrize("content_type", ["application/octet-stream", "text/plain", None])
def test_binary_mode_other_body_is_kept_as_base64(content_type: str | None) -> None:
    headers = binary_headers()
    if content_type:
        headers["content-type"] = content_type
    parsed = parse_binary(headers, b"\x00\x01binary", max_bytes=MAX)
    assert parsed.data is None
    assert parsed.data_base64 == base64.b64encode(b"\x00\x01binary").decode()
    assert parsed.data_bytes() == b"\x00\x01binary"


def test_binary_mode_body_claiming_json_but_not_json_names_data() -> None:
    headers = {**binary_headers(), "content-type": "application/json"}
    with pytest.raises(EnvelopeError) as exc:
        parse_binary(headers, b"<xml/>", max_bytes=MAX)
    assert fields_of(exc) == [(None, "data")]


def test_binary_mode_reports_header_and_body_problems_together() -> None:
    headers = {"ce-specversion": "1.0", "ce-type": "foo", "content-type": "application/json"}
    with pytest.raises(EnvelopeError) as exc:
        parse_binary(headers, b"{", max_bytes=MAX)
    assert sorted(f for _, f in fields_of(exc)) == ["data", "id", "source", "type"]


def test_binary_mode_rejects_bad_percent_encoding_and_data_headers() -> None:
    headers = binary_headers(**{"ce-subject": "%FF", "ce-data": "x"})
    with pytest.raises(EnvelopeError) as exc:
        parse_binary(headers, b"", max_bytes=MAX)
    assert sorted(f for _, f in fields_of(exc)) == ["data", "subject"]


def test_binary_mode_size_counts_body_and_headers() -> None:
    headers = binary_headers()
    size = sum(len(v) for v in headers.values()) + 100
    assert parse_binary(headers, b"x" * 100, max_bytes=size).id == "evt-1"
    with pytest.raises(EventTooLarge):
        parse_binary(headers, b"x" * 101, max_bytes=size)


def test_time_is_stored_in_utc_and_written_with_z() -> None:
    parsed = CloudEvent.model_validate(event(time="2024-05-01T14:00:00.5+02:00"))
    assert parsed.time == datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)
    assert parsed.to_structured()["time"] == "2024-05-01T12:00:00.500000Z"
    assert parsed.attributes()["time"] == "2024-05-01T12:00:00.500000Z"


def test_python_datetimes_must_be_timezone_aware() -> None:
    aware = datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    assert CloudEvent.model_validate(event(time=aware)).time == datetime(2024, 5, 1, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone"):
        CloudEvent.model_validate(event(time=datetime(2024, 5, 1)))


def test_direct_construction_enforces_attribute_names() -> None:
    with pytest.raises(ValueError, match="lowercase"):
        CloudEvent.model_validate(event(Tenant="x"))


def test_attributes_are_strings_and_exclude_data() -> None:
    parsed = CloudEvent.model_validate(event(retries=3, urgent=True, tenant="x"))
    assert parsed.attributes() == {
        "specversion": "1.0",
        "id": "evt-1",
        "source": SOURCE,
        "type": TYPE,
        "subject": "gebruik/42",
        "time": "2024-05-01T12:00:00Z",
        "datacontenttype": "application/json",
        "retries": "3",
        "urgent": "true",
        "tenant": "x",
    }


def test_key_is_partitionkey_else_subject_else_none() -> None:
    assert CloudEvent.model_validate(event(partitionkey="org-1")).key() == "org-1"
    assert CloudEvent.model_validate(event()).key() == "gebruik/42"
    assert CloudEvent.model_validate(event(subject=...)).key() is None


def test_structured_form_omits_absent_attributes_and_keeps_extension_types() -> None:
    parsed = CloudEvent.model_validate(event(subject=..., retries=3, urgent=True))
    structured = parsed.to_structured()
    assert "subject" not in structured and "data_base64" not in structured
    assert structured["retries"] == 3 and structured["urgent"] is True
    assert json.loads(parsed.to_json_bytes()) == structured
    assert b" " not in parsed.to_json_bytes()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"data": {"a": "é"}}, '{"a":"é"}'.encode()),
        ({"data": "text", "datacontenttype": "text/plain"}, b"text"),
        ({"data": "text", "datacontenttype": "application/json"}, b'"text"'),
        ({"data": "text", "datacontenttype": ...}, b'"text"'),
        ({"data": {"a": 1}, "datacontenttype": "text/plain"}, b'{"a":1}'),
        ({"data": ..., "data_base64": "AAE="}, b"\x00\x01"),
        ({"data": ...}, None),
        ({"data": ..., "data_base64": ""}, None),
    ],
    ids=[
        "json",
        "text",
        "json_string",
        "no_ct_is_json",
        "object_under_text",
        "b64",
        "none",
        "empty_b64",
    ],
)
def test_data_bytes_follows_the_content_type(changes: dict[str, Any], expected: bytes | None) -> None:
    assert CloudEvent.model_validate(event(**changes)).data_bytes() == expected


def test_event_is_immutable() -> None:
    parsed = CloudEvent.model_validate(event())
    with pytest.raises(ValueError, match="frozen"):
        parsed.id = "other"  # type: ignore[misc]


def test_problem_is_a_plain_value() -> None:
    assert Problem(1, "type", "bad") == Problem(1, "type", "bad")


def test_package_exports_exactly_its_public_api() -> None:
    assert sorted(schemas.__all__) == sorted(
        [
            "DATA_HINT_HEADER",
            "DEFAULT_MAX_EVENT_BYTES",
            "EXTTYPES_HEADER",
            "CloudEvent",
            "EnvelopeError",
            "EventTooLarge",
            "KafkaRecord",
            "Problem",
            "from_kafka_record",
            "is_json_content_type",
            "parse_batch",
            "parse_binary",
            "parse_structured",
            "to_kafka_record",
            "validate_event",
        ]
    )
    assert all(hasattr(schemas, name) for name in schemas.__all__)
    assert issubclass(EventTooLarge, EnvelopeError) and issubclass(EnvelopeError, ValueError)


@pytest.mark.parametrize("length", [20, 600], ids=["kept", "too-long-to-keep"])
def test_a_uri_is_judged_the_same_every_time_whatever_its_length(length: int) -> None:
    """The URI check keeps its answers for attribute-length values: a repeated bad value is
    refused each time with the same reason, a long one is checked without being kept."""
    bad = "https://x.nl/" + "a b" * (length // 3)
    good = "https://x.nl/" + "ab" * (length // 2)
    for _ in range(2):
        with pytest.raises(EnvelopeError) as exc:
            validate_event(event(dataref=bad))
        assert fields_of(exc) == [(None, "dataref")]
        assert "is not a URI reference" in str(exc.value)
        assert validate_event(event(dataref=good)).dataref == good


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [("application/json", True), ("application/vnd.x+json; charset=utf-8", True), ("text/plain", False),
     (None, True), ("application/" + "x" * 600 + "+json", True), ("text/" + "x" * 600, False)],
)  # fmt: skip
def test_json_content_types_are_recognised_whatever_their_length(
    content_type: str | None, expected: bool
) -> None:
    for _ in range(2):
        assert schemas.is_json_content_type(content_type) is expected


def test_a_copy_with_changes_shows_its_own_attributes_after_the_original_was_read() -> None:
    """An event's context attributes are computed once (issue 17); a ``model_copy`` with
    changes (the publish API stamps ``traceparent``, a withdrawal its generation this way)
    must show the changed attributes, not the original's cached ones."""
    original = validate_event(event())
    assert original.attributes()["subject"] == "gebruik/42"  # computed and cached here
    changed = original.model_copy(update={"subject": "gebruik/43", "traceparent": "00-abc-def-01"})

    assert changed.attributes()["subject"] == "gebruik/43"
    assert changed.to_structured()["traceparent"] == "00-abc-def-01"
    assert original.to_structured()["subject"] == "gebruik/42"
    assert changed == validate_event(changed.to_structured())


def test_reading_an_events_attributes_changes_neither_them_nor_its_equality() -> None:
    """Callers get copies of the cached attributes: changing one changes no later answer, and
    an event that was read equals one that was not."""
    read, unread = validate_event(event()), validate_event(event())
    read.attributes()["subject"] = "changed"
    read.to_structured()["id"] = "changed"

    assert read.attributes()["subject"] == "gebruik/42" and read.to_structured()["id"] == "evt-1"
    assert read == unread and read.model_dump() == unread.model_dump()


def test_a_stamp_shows_in_the_attributes_even_when_they_were_read_before_it() -> None:
    """The publish call stamps ``organisatie`` and ``traceparent`` in place (no copy per event);
    an event whose attributes were already read and cached must show the stamp, and an
    attribute the event brought itself is kept."""
    stamped = validate_event(event())
    assert "organisatie" not in stamped.attributes()  # computed and cached here
    stamped.stamp("organisatie", "00000001234567890000")

    assert stamped.attributes()["organisatie"] == "00000001234567890000"
    assert stamped.to_structured()["organisatie"] == "00000001234567890000"

    own = validate_event({**event(), "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"})
    own.attributes()
    own.stamp("traceparent", "00-" + "c" * 32 + "-" + "d" * 16 + "-00")
    assert own.attributes()["traceparent"] == "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
