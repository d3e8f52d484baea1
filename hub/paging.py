"""Cursor paging shared by every list endpoint: opaque, URL-safe cursors."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from hub.errors import PermanentError

T = TypeVar("T")


class BadCursor(PermanentError):
    """A cursor that this API did not hand out."""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(*parts: str | int) -> str:
    """Pack the sort key of the last item into an opaque cursor."""
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int = 2) -> list[str | int]:
    """Unpack a cursor of ``parts`` values from :func:`encode_cursor`; anything else is a
    :class:`BadCursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as e:  # a nested one: RecursionError
        raise BadCursor("the cursor is not one this API handed out") from e
    well_formed = isinstance(values, list) and len(values) == parts
    if not well_formed or not all(isinstance(v, str | int) for v in values):
        raise BadCursor("the cursor is not one this API handed out")
    return list(values)


def time_cursor(at: datetime, item_id: uuid.UUID) -> str:
    """The cursor after an item of a list sorted by (time, id)."""
    return encode_cursor(at.isoformat(), str(item_id))


def decode_time_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (time, id) of :func:`time_cursor`; :class:`BadCursor` for anything else."""
    at, item_id = decode_cursor(cursor)
    try:
        return datetime.fromisoformat(str(at)), uuid.UUID(str(item_id))
    except ValueError as e:
        raise BadCursor("the cursor is not one this API handed out") from e
