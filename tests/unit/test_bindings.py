"""Kafka binary content mode: exact round trips and interop with the cloudevents SDK."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.bindings import kafka as sdk_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from cloudevents.v1 import conversion as legacy_conversion
from cloudevents.v1 import http as legacy_http
from cloudevents.v1 import kafka as legacy_kafka

from schemas import (
    DATA_HINT_HEADER,
    DEFAULT_MAX_EVENT_BYTES,
    EXTTYPES_HEADER,
    CloudEvent,
    EnvelopeError,
    KafkaRecord,
    from_kafka_record,
    parse_binary,
    parse_structured,
    to_kafka_record,
)

SOURCE = "urn:nld:oin:00000001234567890000:systeem:zaaksysteem"
TYPE = "nl.softwarecatalogus.gebruik.gewijzigd.v1"


def make(**changes: Any) -> CloudEvent:
    raw: dict[str, Any] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": SOURCE,
        "type": TYPE,
        "subject": "gebruik/42",
        "time": "2024-05-01T12:00:00.123456Z",
        "datacontenttype": "application/json",
        "data": {"gebruik": 42, "naam": "Zaaksysteem Één"},
    }
    raw.update(changes)
    return CloudEvent.model_validate({k: v for k, v in raw.items() if v is not ...})


ROUND_TRIPS = {
    "json_data": make(),
    "json_data_without_content_type": make(datacontenttype=...),
    "json_string_data": make(data=""),
    "json_array_data": make(data=[1, "two", None, 3.5]),
    "no_data": make(data=...),
    "no_data_no_content_type": make(data=..., datacontenttype=...),
    "binary_data": make(data=..., datacontenttype="image/png", data_base64="iVBORw0KGgo="),
    "binary_data_without_content_type": make(data=..., datacontenttype=..., data_base64="AAECAw=="),
    "binary_data_under_json_content_type": make(data=..., data_base64="eyJhIjoxfQ=="),
    "text_data": make(datacontenttype="application/xml", data="<gebruik id='42'/>"),
    "empty_text_data": make(datacontenttype="text/plain", data=""),
    "object_under_text_content_type": make(datacontenttype="text/plain", data={"a": 1}),
    "extensions": make(traceparent="00-abc-def-01", retries=3, urgent=True, flag=False),
    "int_like_string_extension": make(code="007", yes="true"),
    "partitionkey": make(partitionkey="org-1"),
    "partitionkey_equal_to_subject": make(partitionkey="gebruik/42"),
    "partitionkey_without_subject": make(subject=..., partitionkey="org-1"),
    "no_key": make(subject=...),
    "all_optional_attributes": make(
        dataschema="https://schemas.example.nl/gebruik.json",
        dataref="https://api.example.nl/gebruik/42",
        sequence="00000000000000000042",
        subject="straße 1",
    ),
}


@pytest.mark.parametrize("event", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_kafka_record_round_trips_exactly(event: CloudEvent) -> None:
    record = to_kafka_record(event)
    back = from_kafka_record(record.key, record.value, record.headers)
    assert back == event
    assert back.to_json_bytes() == event.to_json_bytes()


def test_record_layout_follows_the_kafka_binding() -> None:
    record = to_kafka_record(make(partitionkey="org-1", retries=3))
    headers = dict(record.headers)
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == TYPE.encode()
    assert headers["ce_time"] == b"2024-05-01T12:00:00.123456Z"
    assert headers["ce_partitionkey"] == b"org-1"
    assert headers["ce_retries"] == b"3"
    assert headers["content-type"] == b"application/json"
    assert "ce_datacontenttype" not in headers and "ce_data" not in headers
    assert DATA_HINT_HEADER not in headers
    assert headers[EXTTYPES_HEADER] == b"retries=int"
    assert json.loads(record.value or b"") == {"gebruik": 42, "naam": "Zaaksysteem Één"}
    assert record.key == b"org-1"


@pytest.mark.parametrize("event", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_record_headers_are_the_attributes_in_order_then_content_type_and_hints(event: CloudEvent) -> None:
    """The record's headers, in order, as :meth:`CloudEvent.attributes` gives them (records
    kept in the write-ahead log and relayed later must not change with the builder)."""
    attrs = event.attributes()
    content_type = attrs.pop("datacontenttype", None)
    names = [name for name, _ in to_kafka_record(event).headers]
    expected = ["ce_" + name for name in attrs] + (["content-type"] if content_type is not None else [])
    assert names[: len(expected)] == expected
    assert set(names[len(expected) :]) <= {DATA_HINT_HEADER, EXTTYPES_HEADER}
    assert dict(to_kafka_record(event).headers) == {
        **{"ce_" + k: v.encode() for k, v in attrs.items()},
        **({"content-type": content_type.encode()} if content_type is not None else {}),
        **{k: v for k, v in to_kafka_record(event).headers if k in (DATA_HINT_HEADER, EXTTYPES_HEADER)},
    }


@pytest.mark.parametrize(
    ("event", "key"),
    [
        (make(partitionkey="org-1"), b"org-1"),
        (make(), b"gebruik/42"),
        (make(subject="straße"), "straße".encode()),
        (make(subject=...), None),
    ],
    ids=["partitionkey", "subject", "utf8_subject", "neither"],
)
def test_record_key_is_partitionkey_else_subject(event: CloudEvent, key: bytes | None) -> None:
    assert to_kafka_record(event).key == key


def test_binary_data_is_written_raw() -> None:
    record = to_kafka_record(make(data=..., datacontenttype="image/png", data_base64="AAECAw=="))
    assert record.value == b"\x00\x01\x02\x03"
    assert DATA_HINT_HEADER not in dict(record.headers)


def test_record_without_data_has_no_value() -> None:
    assert to_kafka_record(make(data=...)).value is None


def test_an_event_without_subject_and_data_is_a_record_kafka_takes_and_reads_back_without_data() -> None:
    event = make(data=..., subject=..., datacontenttype=...)
    record = to_kafka_record(event)
    assert record.key is None and record.value == b""  # aiokafka refuses a record with neither
    assert from_kafka_record(record.key, record.value, record.headers) == event


def test_a_foreign_key_without_partitionkey_header_becomes_partitionkey() -> None:
    record = to_kafka_record(make())
    back = from_kafka_record(b"other-key", record.value, record.headers)
    assert back.partitionkey == "other-key"


def base_headers(**extra: bytes) -> list[tuple[str, bytes]]:
    headers = {"ce_specversion": b"1.0", "ce_id": b"1", "ce_source": b"/s", "ce_type": b"a.b"}
    headers.update(extra)
    return list(headers.items())


@pytest.mark.parametrize(
    ("key", "value", "headers", "field"),
    [
        (None, None, base_headers()[1:], "specversion"),
        (None, None, [("ce_id", b"1")], "source"),
        (None, None, base_headers(ce_subject=b"\xff"), "subject"),
        (b"\xff", None, base_headers(), "partitionkey"),
        (None, b"not json", base_headers(), "data"),
        (None, b"{}", [*base_headers(), (DATA_HINT_HEADER, b"zip")], "data"),
        (None, None, [*base_headers(ce_n=b"x"), (EXTTYPES_HEADER, b"n=int")], "n"),
        (None, None, [*base_headers(), (EXTTYPES_HEADER, b"missing=int")], "missing"),
        (None, None, base_headers(ce_type=b"Not A Type"), "type"),
        (None, None, base_headers(ce_data=b"{}"), "data"),
    ],
    ids=[
        "no_specversion",
        "missing_required",
        "non_utf8_header",
        "non_utf8_key",
        "json_value_not_json",
        "unknown_data_hint",
        "bad_typed_extension",
        "typed_extension_missing",
        "invalid_attribute",
        "data_as_header",
    ],
)
def test_invalid_records_raise_envelope_error_naming_the_field(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]], field: str
) -> None:
    with pytest.raises(EnvelopeError) as exc:
        from_kafka_record(key, value, headers)
    assert field in [p.field for p in exc.value.problems]


# --- interop with the cloudevents SDK (both its 2.x core API and the legacy v1 API) ---


def test_sdk_core_reads_our_kafka_record() -> None:
    event = make(partitionkey="org-1", tenant="gem-x")
    record = to_kafka_record(event)
    message = sdk_kafka.KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value or b"")
    sdk_event = sdk_kafka.from_binary(message, JSONFormat())
    assert sdk_event.get_id() == "evt-1"
    assert sdk_event.get_type() == TYPE
    assert sdk_event.get_source() == SOURCE
    assert sdk_event.get_subject() == "gebruik/42"
    assert sdk_event.get_time() == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert sdk_event.get_datacontenttype() == "application/json"
    assert sdk_event.get_extension("partitionkey") == "org-1"
    assert sdk_event.get_extension("tenant") == "gem-x"
    assert sdk_event.get_data() == event.data


def test_sdk_legacy_reads_our_kafka_record() -> None:
    event = make(partitionkey="org-1")
    record = to_kafka_record(event)
    message = legacy_kafka.KafkaMessage(dict(record.headers), record.key, record.value or b"")
    sdk_event = legacy_kafka.from_binary(message)
    assert sdk_event["id"] == "evt-1"
    assert sdk_event["type"] == TYPE
    assert sdk_event["datacontenttype"] == "application/json"
    assert sdk_event["partitionkey"] == b"org-1"
    assert sdk_event.get_data() == event.data


def test_we_read_the_sdk_core_kafka_record() -> None:
    sdk_event = SdkEvent(
        {
            "id": "evt-1",
            "source": SOURCE,
            "type": TYPE,
            "subject": "gebruik/42",
            "time": datetime(2024, 5, 1, 12, tzinfo=UTC),
            "datacontenttype": "application/json",
            "partitionkey": "org-1",
            "tenant": "gem-x",
        },
        {"gebruik": 42},
    )
    message = sdk_kafka.to_binary(sdk_event, JSONFormat())
    key = message.key.encode() if isinstance(message.key, str) else message.key
    event = from_kafka_record(key, message.value, list(message.headers.items()))
    assert event == make(
        data={"gebruik": 42}, time="2024-05-01T12:00:00Z", partitionkey="org-1", tenant="gem-x"
    )


def test_we_read_the_sdk_core_kafka_record_without_data() -> None:
    sdk_event = SdkEvent({"id": "evt-1", "source": SOURCE, "type": TYPE})
    message = sdk_kafka.to_binary(sdk_event, JSONFormat())
    event = from_kafka_record(None, message.value, list(message.headers.items()))
    assert event.data is None and event.data_base64 is None
    assert event.time is not None


def test_we_read_the_sdk_legacy_kafka_record() -> None:
    sdk_event = legacy_http.CloudEvent(
        {
            "id": "evt-1",
            "source": SOURCE,
            "type": TYPE,
            "time": "2024-05-01T12:00:00+00:00",
            "datacontenttype": "application/json",
            "partitionkey": "org-1",
        },
        {"gebruik": 42},
    )
    message = legacy_kafka.to_binary(sdk_event)
    assert "ce_partitionkey" not in message.headers  # the legacy SDK only sets the key
    assert isinstance(message.key, str) and isinstance(message.value, bytes)
    event = from_kafka_record(message.key.encode(), message.value, list(message.headers.items()))
    assert event.partitionkey == "org-1"
    assert event.data == {"gebruik": 42}
    assert event.time == datetime(2024, 5, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "event",
    [
        make(retries=3, urgent=True),
        make(data=..., datacontenttype="image/png", data_base64="iVBORw0KGgo="),
        make(datacontenttype="text/plain", data="hallo"),
        make(data=...),
    ],
    ids=["json_with_extensions", "binary", "text", "no_data"],
)
def test_sdk_parses_our_structured_json(event: CloudEvent) -> None:
    legacy = legacy_http.from_json(event.to_json_bytes())
    assert legacy["id"] == event.id
    assert legacy["type"] == event.type
    assert legacy["time"] == "2024-05-01T12:00:00.123456Z"
    core = JSONFormat().read(None, event.to_json_bytes())
    assert core.get_id() == event.id
    assert core.get_time() == event.time
    assert core.get_data() == (event.data if event.data_base64 is None else event.data_bytes())


def test_we_parse_sdk_structured_json() -> None:
    sdk_event = legacy_http.CloudEvent(
        {"id": "evt-1", "source": SOURCE, "type": TYPE, "subject": "gebruik/42", "tenant": "x"},
        {"gebruik": 42},
    )
    _, body = legacy_conversion.to_structured(sdk_event)
    event = parse_structured(body, max_bytes=DEFAULT_MAX_EVENT_BYTES)
    assert (event.id, event.subject, event.data) == ("evt-1", "gebruik/42", {"gebruik": 42})
    assert event.model_extra == {"tenant": "x"}
    core = sdk_http.to_structured_event(SdkEvent({"id": "2", "source": SOURCE, "type": TYPE}))
    assert parse_structured(core.body, max_bytes=DEFAULT_MAX_EVENT_BYTES).id == "2"


def test_we_parse_sdk_http_binary_mode() -> None:
    sdk_event = SdkEvent(
        {
            "id": "evt-1",
            "source": SOURCE,
            "type": TYPE,
            "subject": "straße 1/ü",
            "time": datetime(2024, 5, 1, 12, tzinfo=UTC),
            "datacontenttype": "application/json",
        },
        {"gebruik": 42},
    )
    message = sdk_http.to_binary_event(sdk_event)
    assert message.headers["ce-subject"] != "straße 1/ü"  # the SDK percent-encodes
    event = parse_binary(message.headers, message.body, max_bytes=DEFAULT_MAX_EVENT_BYTES)
    assert event.subject == "straße 1/ü"
    assert event.time == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert event.data == {"gebruik": 42}


def test_kafka_record_is_a_plain_value() -> None:
    assert KafkaRecord(None, None, []) == KafkaRecord(None, None, [])
