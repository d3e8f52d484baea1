"""The Signalen connector's fast fingerprint is ``content_hash`` byte for byte: fingerprints
stored by earlier runs must keep matching, or an upgrade republishes every melding."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from connectors.ids import content_hash
from connectors.signalen.connector import digest

MELDING: dict[str, Any] = {
    "id": 7,
    "signal_id": "0f6c1b5e-8d0a-4a4e-9f55-1f3f7c2e9a10",
    "text": 'Afval naast de container, 3e verdieping; "quotes" \\ \n\t\u0001 é € \u2028 😀',
    "status": {"state": "m", "state_display": "Gemeld", "text": None},
    "location": {"geometrie": {"type": "Point", "coordinates": [4.8936041, 52.3731339]}},
    "priority": {"priority": "normal"},
    "routing_departments": [{"code": "ASC", "name": "Actie Service Centrum"}],
    "category": {"main_slug": "afval", "sub_slug": "container-is-vol"},
    "empty": [],
    "flags": [True, False, None, 0, -1, 0.5],
}


@pytest.mark.parametrize(
    "value",
    [
        MELDING,
        {**MELDING, "z": 1e16, "a": 1e-7},  # exponent floats: the stdlib writes 1e+16
        {**MELDING, "big": 2**70},  # beyond 64 bits: orjson refuses
        {**MELDING, "small": 1.5e-5, "tiny": -2.5e-9},  # orjson 0.000015, the stdlib 1.5e-05
        {**MELDING, "nested": {"b": {"d": 1, "c": 2}, "a": [{"y": 1, "x": 2}]}},
        {"ü": 1, "u": 2, "Z": 3, "a": 4, "é": 5},  # key order by code point
    ],
)
def test_signalen_digest_equals_content_hash(value: dict[str, Any]) -> None:
    assert digest(value) == content_hash(value)


def test_a_page_decoded_by_orjson_keeps_its_fingerprint() -> None:
    decoded = orjson.loads(orjson.dumps(MELDING))
    assert digest(decoded) == content_hash(MELDING)
