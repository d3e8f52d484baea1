"""The publish fast path reads the body from ``receive`` itself and writes its answer with
orjson: a body in several chunks is read whole, one over the limit is refused as it arrives,
and the 202's bytes are those ``json.dumps`` writes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hub.api.events import BATCH
from tests.support.hub_api import event
from tests.support.memory_app import ADMIN_TOKEN, MemoryApp

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for at in range(0, len(body), size):
        yield body[at : at + size]


async def test_a_batch_sent_in_many_chunks_is_read_whole(
    client: httpx.AsyncClient, memory: MemoryApp
) -> None:
    events = [event(f"key-{n}", n, id=f"chunked-{n}") for n in range(20)]
    body = json.dumps(events).encode()

    response = await client.post(
        "/api/v1/events", content=chunks(body, 97), headers={**AUTH, "Content-Type": BATCH}
    )

    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == [f"chunked-{n}" for n in range(20)]
    assert len(memory.published()) == 20


@pytest.mark.parametrize("settings", [{"max_request_bytes": 2_000}], indirect=True)
async def test_a_chunked_body_past_the_limit_is_a_413_and_nothing_is_published(
    client: httpx.AsyncClient, memory: MemoryApp
) -> None:
    body = json.dumps([event(f"key-{n}", n) for n in range(20)]).encode()
    assert len(body) > 2_000

    response = await client.post(
        "/api/v1/events", content=chunks(body, 500), headers={**AUTH, "Content-Type": BATCH}
    )

    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert memory.published() == []


async def test_the_202_is_the_bytes_json_dumps_writes(client: httpx.AsyncClient) -> None:
    ids = ["é-ü-€", 'quote"and\\backslash', "emoji-😀"]
    body = json.dumps([event(f"key-{n}", n, id=i) for n, i in enumerate(ids)]).encode()

    response = await client.post("/api/v1/events", content=body, headers={**AUTH, "Content-Type": BATCH})

    assert response.status_code == 202, response.text
    expected = json.dumps({"accepted": ids}, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    assert response.content == expected.encode()
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(expected.encode()))


async def _hang_up_mid_body(memory: MemoryApp, path: str, content_type: str) -> list[dict[str, Any]]:
    """Drive the ASGI app as a server does for a client that sends part of its body and hangs
    up: the server then answers ``receive`` with ``http.disconnect``."""
    part = {"type": "http.request", "body": b'{"specversion": ', "more_body": True}
    messages: list[dict[str, Any]] = [part]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [
        (b"host", b"hub"),
        (b"authorization", f"Bearer {ADMIN_TOKEN}".encode()),
        (b"content-type", content_type.encode()),
        (b"content-length", b"1000"),
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": headers,
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    await memory.app(scope, receive, send)  # type: ignore[arg-type]
    return sent


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/api/v1/events", "application/cloudevents+json"), ("/api/v1/subscriptions", "application/json")],
)
async def test_a_client_that_hangs_up_mid_body_is_no_exception_and_nothing_is_published(
    memory: MemoryApp, path: str, content_type: str
) -> None:
    # Before, on the publish path: starlette's ClientDisconnect went up to the server, which
    # logged "Exception in ASGI application" with a traceback (seen in a broker-restart test's
    # hub output). FastAPI's routes answer it as a body they could not parse.
    sent = await _hang_up_mid_body(memory, path, content_type)

    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 400
    if path == "/api/v1/events":
        assert b"the client closed the connection" in b"".join(m.get("body", b"") for m in sent[1:])
    assert memory.published() == []
