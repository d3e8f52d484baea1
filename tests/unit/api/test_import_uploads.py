"""Uploading an import (``POST /api/v1/imports``) on the in-memory stores: the file is stored under
the data dir whatever name the client gives it."""

from __future__ import annotations

import uuid

import httpx
import pytest

from hub.adapters.memory import InMemoryConnectorTables, InMemoryImportStore
from hub.settings import Settings
from tests.support.memory_app import ADMIN_TOKEN, MemoryApp

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BODY = b"id;afnemer;applicatie;status\ng-1;org-1;app-1;In productie\n"


@pytest.mark.parametrize(
    ("filename", "stored_as"),
    [("..", "upload"), (".", "upload"), ("../..", "upload"), ("a/..", "upload"), ("...", "...")],
)
async def test_an_upload_named_dot_or_dot_dot_is_stored_as_upload_and_accepted(
    client: httpx.AsyncClient, memory: MemoryApp, settings: Settings, filename: str, stored_as: str
) -> None:
    """A filename of ``..`` made the target the uploads folder itself: a 500 (IsADirectoryError)."""
    store = InMemoryImportStore(InMemoryConnectorTables())
    memory.app.state.ctx.imports = store

    response = await client.post(
        "/api/v1/imports",
        data={"objecttype": "gebruik", "organisatie": "org-1"},
        files={"file": (filename, BODY, "text/csv")},
        headers=AUTH,
    )

    assert response.status_code == 202, response.text
    record = await store.get(uuid.UUID(response.json()["id"]))
    uploads = (settings.data_dir / "imports").resolve()
    stored = uploads / str(record.id) / record.filename
    assert record.filename == stored_as
    assert record.path == str(stored)
    assert stored.read_bytes() == BODY
