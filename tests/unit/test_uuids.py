"""schemas.uuids: the hot paths' name-based UUIDs are the standard library's, byte for byte
(receivers dedupe on the webhook-id, the projector on event ids: neither may change)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from schemas.uuids import uuid5_text


@given(namespace=st.uuids(), name=st.text())  # st.text() makes no lone surrogates: both encode it
def test_uuid5_text_is_the_standard_librarys_uuid5(namespace: uuid.UUID, name: str) -> None:
    assert uuid5_text(namespace.bytes, name) == str(uuid.uuid5(namespace, name))


def test_uuid5_text_of_known_names() -> None:
    for name in ("", "e1", "évènement-ü", "x" * 300, "urn:nld:oin:1:systeem:a\ne-1"):
        assert uuid5_text(uuid.NAMESPACE_URL.bytes, name) == str(uuid.uuid5(uuid.NAMESPACE_URL, name))
