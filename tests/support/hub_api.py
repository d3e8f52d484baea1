"""Helpers the end-to-end tests share: events to publish, subscriptions, waiting."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.subscriptions import PostgresSubscriptionStore
from hub.ports import SubscriptionRecord
from subscriptions.signing import generate_secret

TYPE = "nl.signalen.melding.gewijzigd.v1"
SOURCE = "urn:nld:oin:00000001234567890000:systeem:testbron"
#: The type of marker events that prove absence: only a witness subscription takes them, so
#: they never join the queue under test. A witness receiving a marker published after the rows
#: that must not be sent proves the dispatcher ran a claim round once those rows were due (each
#: round offers every active subscription's due rows), with no timer to guess.
MARKER = "nl.koppelhub-test.marker.v1"


def event(subject: str = "key-1", n: int = 0, **changes: Any) -> dict[str, Any]:
    """A valid structured-mode CloudEvent with a fresh id; ``changes`` replace attributes."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": SOURCE,
        "type": TYPE,
        "subject": subject,
        "time": "2026-11-22T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {"n": n},
        **changes,
    }


def landscape_event(objecttype: str, verb: str, data: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    """A ``nl.softwarecatalogus.<objecttype>.<verb>.v1`` event about ``data["id"]``."""
    return event(data["id"], type=f"nl.softwarecatalogus.{objecttype}.{verb}.v1", data=data, **attributes)


async def publish(client: httpx.AsyncClient, auth: dict[str, str], *events: dict[str, Any]) -> httpx.Response:
    """Publish ``events`` as one batch."""
    return await client.post(
        "/api/v1/events",
        content=json.dumps(list(events)),
        headers={**auth, "content-type": "application/cloudevents-batch+json"},
    )


async def subscribe(
    client: httpx.AsyncClient, auth: dict[str, str], sink_url: str, **body: Any
) -> dict[str, Any]:
    """Create a subscription through the API (201 expected); returns it with its secret."""
    response = await client.post("/api/v1/subscriptions", json={"sink": sink_url, **body}, headers=auth)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def subscribe_in_store(
    engine: AsyncEngine, sink_url: str, *, filters: list[dict[str, Any]] | None = None
) -> SubscriptionRecord:
    """Create a subscription directly in the store (no API in the process); without
    ``filters`` it matches everything."""
    return await PostgresSubscriptionStore(engine).create(
        sink=sink_url,
        protocol="HTTP",
        source=None,
        types=None,
        filters=filters or [],
        headers={},
        config={},
        secret=generate_secret(),
    )


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 20.0, what: str = "") -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what or 'condition'}"
        await asyncio.sleep(0.05)


async def ready(client: httpx.AsyncClient, *, timeout: float = 20.0) -> httpx.Response:
    """``GET /readyz`` until it answers 200 (or ``timeout`` passes); returns the last answer.

    Every projector member counts only once it has joined its consumer group, which can take a
    few seconds on a busy machine after the first events were already projected by another."""
    response = await client.get("/readyz")
    deadline = asyncio.get_running_loop().time() + timeout
    while response.status_code != 200 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
        response = await client.get("/readyz")
    return response


async def run_import(
    client: httpx.AsyncClient, auth: dict[str, str], body: bytes, filename: str, **form: str
) -> dict[str, Any]:
    """Upload ``body`` to ``POST /api/v1/imports`` (202 expected) and wait until the import is
    done or failed; returns its final status document."""
    response = await client.post("/api/v1/imports", data=form, files={"file": (filename, body)}, headers=auth)
    assert response.status_code == 202, response.text
    import_id = response.json()["id"]
    final: dict[str, Any] = {}

    async def finished() -> bool:
        nonlocal final
        final = (await client.get(f"/api/v1/imports/{import_id}", headers=auth)).json()
        return final["status"] in ("done", "failed")

    await eventually(finished, what=f"the import of {filename} to finish")
    return final
