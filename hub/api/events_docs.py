"""The OpenAPI description of ``POST /api/v1/events``: its three content modes and its 202.

The route reads the raw body itself (three media types, size limits before parsing), so
FastAPI cannot infer any of this; it lives here rather than in the route's decorator.
"""

from __future__ import annotations

from typing import Any

_EXAMPLE: dict[str, Any] = {
    "specversion": "1.0",
    "id": "8d5e2a3c-5b0f-4a57-9a43-0c0d5f1b7a11",
    "source": "urn:nld:oin:00000001234567890000:systeem:cmdb",
    "type": "nl.softwarecatalogus.gebruik.vastgelegd.v1",
    "subject": "gebruik-123",
    "time": "2026-11-22T10:00:00Z",
    "sequence": "00000000000000000042",
    "datacontenttype": "application/json",
    "data": {"id": "gebruik-123", "afnemer": "org-1", "applicatie": "app-7", "status": "In productie"},
}

_CE = {"$ref": "#/components/schemas/CloudEvent"}


def _header(name: str, description: str, example: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": f"Binary mode only (required there): {description}",
        "schema": {"type": "string"},
        "example": example,
    }


PUBLISH_OPENAPI: dict[str, Any] = {
    "parameters": [
        _header("ce-specversion", "the CloudEvents version", "1.0"),
        _header("ce-id", "the event id, unique per source", _EXAMPLE["id"]),
        _header("ce-source", "the source URI (NL GOV: an OIN URN)", _EXAMPLE["source"]),
        _header("ce-type", "the event type", _EXAMPLE["type"]),
        _header("ce-subject", "the subject (landscape events: the object id)", _EXAMPLE["subject"]),
        _header("ce-time", "RFC 3339 time", _EXAMPLE["time"]),
        _header("ce-sequence", "a zero-padded sequence (compared as strings)", _EXAMPLE["sequence"]),
    ],
    "requestBody": {
        "required": True,
        "description": (
            "One of three content modes, chosen by `Content-Type`: structured "
            "(`application/cloudevents+json`, one event), batch "
            "(`application/cloudevents-batch+json`, a JSON array, all-or-nothing), or binary "
            "(any other `Content-Type` with `ce-*` headers; the body is the event's `data`)."
        ),
        "content": {
            "application/cloudevents+json": {"schema": _CE, "example": _EXAMPLE},
            "application/cloudevents-batch+json": {
                "schema": {"type": "array", "items": _CE},
                "example": [_EXAMPLE],
            },
            "application/json": {
                "schema": {"description": "Binary mode: the event's data; attributes in ce-* headers"},
                "example": _EXAMPLE["data"],
            },
        },
    },
}

PUBLISHED: dict[str, Any] = {
    "description": (
        "Every event is in Kafka (acks=all). `warnings` lists accepted mistakes, e.g. an unpadded "
        "numeric `sequence`; a duplicate (`source`+`id` seen before) is answered like a new event."
    ),
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["accepted"],
                "properties": {
                    "accepted": {"type": "array", "items": {"type": "string"}, "description": "event ids"},
                    "warnings": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "index": {"type": "integer", "description": "batch position"},
                                "kind": {"type": "string", "example": "sequence-not-padded"},
                                "field": {"type": "string", "example": "sequence"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            },
            "example": {"accepted": [_EXAMPLE["id"]]},
        }
    },
}
