"""``koppelhub receive`` (issue 11): answers the handshake, prints verified deliveries, refuses
a bad signature, and asks the hub to retry while it has no secret yet."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from hub.cli_receive import Receiver, _secret_source, receiver_app
from subscriptions.signing import generate_secret, webhook_headers

EVENT = {
    "specversion": "1.0",
    "id": "e-1",
    "source": "urn:x",
    "type": "nl.example.thing.v1",
    "subject": "s-1",
}


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    return tmp_path / "secret"


@pytest.fixture
async def receiver(secret_file: Path) -> AsyncIterator[tuple[str, list[str]]]:
    printed: list[str] = []
    server = TestServer(receiver_app(Receiver(_secret_source(None, secret_file), printed.append)))
    await server.start_server()
    try:
        yield str(server.make_url("/hook")), printed
    finally:
        await server.close()


async def _deliver(url: str, secret: str) -> int:
    body = json.dumps(EVENT).encode()
    headers = webhook_headers(secret, "msg-1", int(time.time()), body)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, data=body, headers={**headers, "content-type": "application/cloudevents+json"}
        ) as response,
    ):
        return response.status


async def test_the_handshake_is_answered_with_the_origin(receiver: tuple[str, list[str]]) -> None:
    url, printed = receiver
    async with (
        aiohttp.ClientSession() as session,
        session.options(url, headers={"WebHook-Request-Origin": "koppelhub.example"}) as response,
    ):
        assert response.status == 200
        assert response.headers["WebHook-Allowed-Origin"] == "koppelhub.example"
    assert printed == ["handshake from koppelhub.example: allowed"]


async def test_a_verified_delivery_is_printed_and_a_forged_one_refused(
    receiver: tuple[str, list[str]], secret_file: Path
) -> None:
    url, printed = receiver
    secret = generate_secret()

    assert await _deliver(url, secret) == 503  # no secret yet: the hub retries
    await asyncio.to_thread(secret_file.write_text, secret + "\n")
    assert await _deliver(url, secret) == 204
    assert await _deliver(url, generate_secret()) == 401

    assert "no secret yet" in printed[0]
    assert printed[1].startswith("event nl.example.thing.v1  id=e-1  subject=s-1  (signature verified")
    assert json.loads(printed[1].split("\n", 1)[1]) == EVENT
    assert "REFUSED (401)" in printed[2]
