"""``GET /asyncapi.json``: the AsyncAPI 3.0 document of the event catalogue (open, like the
OpenAPI document). Built once from ``schemas`` (the same text ``schemas/json/asyncapi.json``
holds; ``python -m schemas.generate --check`` keeps that file in step)."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter

from schemas.asyncapi import asyncapi_document

router = APIRouter(tags=["operations"])


@functools.cache
def _document() -> dict[str, Any]:
    return asyncapi_document()


@router.get("/asyncapi.json", summary="AsyncAPI 3.0 document of every event type")
async def asyncapi() -> dict[str, Any]:
    return _document()
