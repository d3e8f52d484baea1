"""The AsyncAPI 3.0 document of the event catalogue, built from the models in ``schemas``.

Written to ``schemas/json/asyncapi.json`` by ``python -m schemas.generate`` (and stale-checked
by ``--check`` like every schema file there); the API serves it at ``/asyncapi.json``. It
lists every event type the hub takes in (``…vastgelegd.v1``, ``…ingetrokken.v1``, the gebruik
proposal ``…gebruik.voorgesteld.v1``) and every
type it emits (derived ``…aangemaakt|gewijzigd|verwijderd.v1``, the ``nl.koppelhub.*`` alerts
and test event), each message a CloudEvent whose ``data`` has the type's own schema. Types
other systems publish freely (Signalen and other connector events) travel the same channel as
any CloudEvent. Depends on pydantic only.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from schemas.envelope import CloudEvent
from schemas.hub_events import DELIVERY_DEAD, SUBSCRIPTION_DISABLED, SUBSCRIPTION_TEST
from schemas.landscape import (
    DERIVED_VERBS,
    INBOUND_VERBS,
    OBJECT_TYPES,
    VOORGESTELD_TYPE,
    GebruikVoorstel,
    Ingetrokken,
)
from schemas.landscape.events import event_type

__all__ = ["ASYNCAPI_VERSION", "asyncapi_document"]

ASYNCAPI_VERSION = "3.0.0"
REF = "#/components/schemas/{model}"

_FIELD_CHANGE = {
    "type": "object",
    "required": ["field", "old", "new"],
    "properties": {"field": {"type": "string"}, "old": {}, "new": {}},
}
_DELIVERY_DEAD = {
    "type": "object",
    "description": "A delivery used up its retry schedule.",
    "properties": {
        "subscriptionId": {"type": "string", "format": "uuid"},
        "deliveryId": {"type": "string", "format": "uuid"},
        "eventId": {"type": "string"},
        "eventType": {"type": "string"},
        "sink": {"type": "string", "description": "the sink URL, credentials redacted"},
        "attempts": {"type": "integer"},
        "lastStatusCode": {"type": ["integer", "null"]},
        "lastError": {"type": ["string", "null"]},
    },
}
_SUBSCRIPTION_DISABLED = {
    "type": "object",
    "description": "A subscription was disabled: its sink answered 410 Gone, or it failed too long.",
    "properties": {
        "subscriptionId": {"type": "string", "format": "uuid"},
        "sink": {"type": "string"},
        "reason": {"type": "string"},
    },
}


def _schemas(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    """``model``'s JSON Schema with its definitions hoisted into ``schemas``; a reference to it."""
    schema = model.model_json_schema(ref_template=REF)
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    name = model.__name__
    schemas.setdefault(name, schema)
    return {"$ref": REF.format(model=name)}


def _message(type_: str, summary: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": type_,
        "title": type_,
        "summary": summary,
        "contentType": "application/cloudevents+json",
        "payload": {
            "allOf": [
                {"$ref": REF.format(model="CloudEvent")},
                {"type": "object", "properties": {"type": {"const": type_}, "data": data}},
            ]
        },
    }


def _key(type_: str) -> str:
    """A component key for a type (AsyncAPI keys allow letters, digits, ``.``, ``-``, ``_``)."""
    return type_


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a plain, JSON-serialisable dict, keys in a stable order)."""
    schemas: dict[str, Any] = {}
    _schemas(CloudEvent, schemas)
    ingetrokken = _schemas(Ingetrokken, schemas)
    inbound: dict[str, Any] = {}
    derived: dict[str, Any] = {}
    for objecttype, model in OBJECT_TYPES.items():
        state = _schemas(model, schemas)
        for verb in INBOUND_VERBS:
            t = event_type(objecttype, verb)
            data = state if verb == "vastgelegd" else ingetrokken
            what = "the whole object" if verb == "vastgelegd" else "its id"
            inbound[_key(t)] = _message(t, f"A source records a {objecttype} ({what}).", data)
        for verb in DERIVED_VERBS:
            t = event_type(objecttype, verb)
            data = state
            if verb == "gewijzigd":
                data = {
                    "allOf": [
                        state,
                        {"properties": {"wijzigingen": {"type": "array", "items": _FIELD_CHANGE}}},
                    ]
                }
            derived[_key(t)] = _message(t, f"The hub's landscape: a {objecttype} was {verb}.", data)
    alerts = {
        _key(DELIVERY_DEAD): _message(DELIVERY_DEAD, "Alert: a delivery is dead.", _DELIVERY_DEAD),
        _key(SUBSCRIPTION_DISABLED): _message(
            SUBSCRIPTION_DISABLED, "Alert: a subscription was disabled.", _SUBSCRIPTION_DISABLED
        ),
        _key(SUBSCRIPTION_TEST): _message(
            SUBSCRIPTION_TEST, "The signed test event a subscriber asks for.", {}
        ),
    }
    inbound[_key(VOORGESTELD_TYPE)] = _message(
        VOORGESTELD_TYPE,
        "A source proposes a gebruik for an afnemer (a supplier's usedBy): delivered to "
        "subscribers, never projected as a gebruik (the afnemer decides).",
        _schemas(GebruikVoorstel, schemas),
    )
    messages = {**inbound, **derived, **alerts}

    def refs(group: dict[str, Any], channel: str = "events") -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/{channel}/messages/{key}"} for key in group]

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Koppelhub event catalogue",
            "version": "1.0.0",
            "description": (
                "NL GOV CloudEvents through Koppelhub: publish with POST /api/v1/events, receive "
                "signed webhooks (Standard Webhooks) or pull through a subscription."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": {
            "events": {
                "address": "koppelhub.events",
                "title": "Every event (Kafka, key = partitionkey or subject)",
                "messages": {key: {"$ref": f"#/components/messages/{key}"} for key in messages},
            },
        },
        "operations": {
            "publishLandscape": {
                "action": "receive",
                "title": "Sources record landscape objects",
                "channel": {"$ref": "#/channels/events"},
                "messages": refs(inbound),
            },
            "emitLandscapeChanges": {
                "action": "send",
                "title": "The hub derives a change event when the landscape really changed",
                "channel": {"$ref": "#/channels/events"},
                "messages": refs(derived),
            },
            "emitAlerts": {
                "action": "send",
                "title": "The hub's alerts and test event",
                "channel": {"$ref": "#/channels/events"},
                "messages": refs(alerts),
            },
        },
        "components": {"schemas": dict(sorted(schemas.items())), "messages": messages},
    }
