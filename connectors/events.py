"""From changes to NL GOV CloudEvents: ``vastgelegd`` and ``ingetrokken`` landscape events.

Pure: the runner calls these with the generation it read from the fingerprint store.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cache, lru_cache
from typing import Any

from connectors.ids import event_id
from schemas import CloudEvent
from schemas.bindings import KafkaRecord, to_kafka_record
from schemas.envelope import MAX_ATTRIBUTE_LENGTH, EnvelopeError, format_time, validate_event
from schemas.jsonbytes import dumps_compact, dumps_parsed, json_size
from schemas.landscape import ingetrokken_type, vastgelegd_type

__all__ = [
    "import_source",
    "ingetrokken_event",
    "passthrough_event",
    "passthrough_record",
    "passthrough_size",
    "vastgelegd_event",
    "vastgelegd_record",
    "vastgelegd_size",
]


def import_source(hub_urn: str, kind: str, key: str) -> str:
    """The CloudEvents ``source`` of a connector or an import.

    ``<hub urn>:connector:<id>`` for a connector instance, ``<hub urn>:import:<organisatie>``
    for uploads and ``koppelhub import`` (one source per organisation, so a re-import of
    the same file finds the fingerprints of the previous one). Characters outside the
    URN-safe set are percent-encoded.
    """
    safe = "".join(c if c.isalnum() or c in "-._~" else f"%{ord(c):02X}" for c in key)
    return f"{hub_urn}:{kind}:{safe}"


_vastgelegd = cache(vastgelegd_type)


def _event(**attrs: Any) -> CloudEvent:
    # Every attribute is made here from validated parts (a urn: source, a uuid id, a known
    # type, a validated object as data), so the envelope checks are skipped for speed: they
    # cost more than the rest of an import row. The contract test validates what this makes.
    return CloudEvent.model_construct(specversion="1.0", datacontenttype="application/json", **attrs)


def vastgelegd_event(
    source: str, scope: str, objecttype: str, data: dict[str, Any], digest: str, generation: int
) -> CloudEvent:
    """The event that records the whole object ``data`` (subject = its id)."""
    object_id = str(data["id"])
    return _event(
        id=event_id(scope, objecttype, object_id, digest, generation),
        source=source,
        type=_vastgelegd(objecttype),
        subject=object_id,
        data=data,
    )


@lru_cache(maxsize=1024)
def _constant_headers(source: str, objecttype: str) -> tuple[tuple[str, bytes], ...]:
    return (("ce_source", source.encode()), ("ce_type", _vastgelegd(objecttype).encode()))


def vastgelegd_record(
    source: str,
    scope: str,
    objecttype: str,
    object_id: str,
    data_json: bytes,
    digest: str,
    generation: int,
    extra: tuple[tuple[str, bytes], ...] = (),
) -> KafkaRecord:
    """:func:`vastgelegd_event` written straight into the Kafka binding, from the object's data
    already serialised (``data_json``, as :func:`connectors.mapping.map_records` makes it): the
    same record as ``schemas.bindings.to_kafka_record(vastgelegd_event(...))``, without building
    the event (an import makes one per row; a unit test holds the two equal). ``extra`` headers
    (extension attributes such as the organisatie stamp) are appended."""
    (src, typ) = _constant_headers(source, objecttype)
    subject = object_id.encode()
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id(scope, objecttype, object_id, digest, generation).encode()),
        src,
        typ,
        ("ce_subject", subject),
        ("content-type", b"application/json"),
        *extra,
    ]
    return KafkaRecord(key=subject, value=data_json, headers=headers)


@lru_cache(maxsize=1024)
def _envelope_bytes(source: str, objecttype: str) -> int:
    # Every attribute but subject and data; the id is a UUID, always 36 characters.
    probe = {
        "specversion": "1.0",
        "id": "0" * 36,
        "source": source,
        "type": _vastgelegd(objecttype),
        "subject": "",
        "datacontenttype": "application/json",
        "data": None,
    }
    return len(dumps_compact(probe)) - len(b'""null')


def vastgelegd_size(source: str, objecttype: str, object_id: str, data_json: bytes, limit: int) -> int:
    """The size publish would measure for :func:`vastgelegd_event` (its compact structured JSON,
    as ``schemas.bindings`` counts against KOPPELHUB_MAX_EVENT_BYTES); exact whenever it may
    exceed ``limit`` (the subject is the id, which the data holds too, so it is at most the
    data's length: below that bound the data's length is returned without encoding the id)."""
    base = _envelope_bytes(source, objecttype) + len(data_json)
    if base + len(data_json) <= limit:
        return base
    return base + len(dumps_compact(object_id))


def ingetrokken_event(
    source: str, scope: str, objecttype: str, object_id: str, generation: int
) -> CloudEvent:
    """The event that withdraws ``object_id``."""
    return _event(
        id=event_id(scope, objecttype, object_id, None, generation),
        source=source,
        type=ingetrokken_type(objecttype),
        subject=object_id,
        data={"id": object_id},
    )


def passthrough_event(attrs: Mapping[str, Any], *, id: str, source: str, organisatie: str) -> CloudEvent:
    """A pass-through connector's event: its :meth:`~connectors.base.Connector.event` attributes
    plus what the runner adds (deterministic ``id``, ``source``, the ``organisatie`` stamp).
    Built from validated parts (the contract test validates what connectors make)."""
    return _event(id=id, source=source, organisatie=organisatie, **attrs)


def passthrough_size(attrs: Mapping[str, Any], *, id: str, source: str, organisatie: str) -> int:
    """The size publish would measure for :func:`passthrough_event` (its compact structured
    JSON, as ``schemas.bindings`` counts against KOPPELHUB_MAX_EVENT_BYTES). Builds the event:
    for the few items :func:`hub.services.publishable.record_may_exceed` cannot clear."""
    event = passthrough_event(attrs, id=id, source=source, organisatie=organisatie)
    return json_size(event.to_structured())


#: The attributes a pass-through event may carry besides ``type`` and ``data``, in the order the
#: binding writes them (``schemas.envelope._ATTRIBUTE_FIELDS``): a string each, ``time`` a datetime.
_PASSTHROUGH_TEXT = ("subject", "time", "dataschema", "dataref", "sequence", "partitionkey")
_PASSTHROUGH_ATTRS = frozenset({"type", "data", *_PASSTHROUGH_TEXT})


def passthrough_problem(attrs: Mapping[str, Any], *, id: str, source: str) -> tuple[str, str] | None:
    """The first reason the envelope would refuse a pass-through event's attributes (the
    attribute, the message), or None. They come from the source's data (a melding's
    ``updated_at``, an item's id as ``subject``), and the event is built without validation:
    unchecked, one the projector cannot read would be published, counted and dead-lettered. The
    common case passes quick checks; anything else is validated as publish would."""
    if all(_plain(name, attrs.get(name)) for name in _PASSTHROUGH_TEXT):
        return None
    raw = {k: v for k, v in attrs.items() if k != "data"} | {"specversion": "1.0", "id": id, "source": source}
    try:
        validate_event(raw)
    except EnvelopeError as e:
        return e.problems[0].field, e.problems[0].message
    return None


def _plain(name: str, value: Any) -> bool:
    """Whether ``value`` is an attribute the envelope takes as it is, without a closer look."""
    if value is None:
        return True
    if name == "time":  # aware, and in range once in UTC
        return type(value) is datetime and value.utcoffset() is not None and 1 < value.year < 9999
    if name in ("dataschema", "dataref"):
        return False  # URIs: rare here, validated
    return type(value) is str and 0 < len(value) <= MAX_ATTRIBUTE_LENGTH and value.isprintable()


def passthrough_record(
    attrs: Mapping[str, Any], *, id: str, source: str, organisatie: str, parsed: bool
) -> KafkaRecord:
    """:func:`passthrough_event` written straight into the Kafka binding: the same record as
    ``schemas.bindings.to_kafka_record(passthrough_event(...))`` (a unit test holds the two
    equal), without building the event and reading its attributes back (a model and two dicts
    per event): 10.5 against 23.6 us for a melding of the Signalen fake (timeit, data included).
    Attributes of another shape (an extension, a value of another type) go through the event.

    ``parsed``: the data holds only what a JSON parser made plus strings, integers, booleans
    and None (:attr:`connectors.base.Connector.parsed_data`), so it is written with
    :func:`schemas.jsonbytes.dumps_parsed` (the same bytes, without walking the data)."""
    kind = attrs.get("type")
    if type(kind) is not str or not attrs.keys() <= _PASSTHROUGH_ATTRS:
        return to_kafka_record(passthrough_event(attrs, id=id, source=source, organisatie=organisatie))
    headers = [("ce_specversion", b"1.0"), ("ce_id", id.encode()), ("ce_source", source.encode())]
    headers.append(("ce_type", kind.encode()))
    for name in _PASSTHROUGH_TEXT:
        value = attrs.get(name)
        if value is None:
            continue
        if type(value) is datetime and name == "time":
            value = format_time(value)
        elif type(value) is not str or name == "time":
            return to_kafka_record(passthrough_event(attrs, id=id, source=source, organisatie=organisatie))
        headers.append(("ce_" + name, value.encode()))
    headers.append(("ce_organisatie", organisatie.encode()))
    headers.append(("content-type", b"application/json"))
    key = attrs.get("partitionkey")
    key = attrs.get("subject") if key is None else key
    data = attrs.get("data")
    value = None if data is None else (dumps_parsed(data) if parsed else dumps_compact(data))
    if key is None and value is None:
        value = b""  # as to_kafka_record: Kafka needs a key or a value
    return KafkaRecord(key=None if key is None else key.encode(), value=value, headers=headers)
