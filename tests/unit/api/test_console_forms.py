"""The console's form posts on the in-memory app, without a browser: what a handler does with
what a form sends. The browser suite (tests/e2e/test_console_*browser.py) clicks through the
pages in Chromium; these run everywhere, in milliseconds."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from schemas import validate_event
from tests.support.hub_api import subscribe
from tests.support.memory_app import ADMIN_TOKEN, MemoryApp
from tests.support.sink import WebhookSink


async def _sign_in(client: httpx.AsyncClient) -> None:
    response = await client.post("/console/login", data={"token": ADMIN_TOKEN})
    assert response.status_code == 303 and response.headers["location"] == "/console", response.text


def _event(n: int) -> dict[str, object]:
    return {"specversion": "1.0", "id": f"e-{n}", "source": "urn:nld:test", "type": "nl.test.thing.v1"}


async def test_a_replay_from_a_time_with_an_offset_starts_at_that_instant(
    memory: MemoryApp, auth: dict[str, str], sink: WebhookSink
) -> None:
    sub = await subscribe(memory.client, auth, sink.url)
    memory.database.publish([validate_event(_event(1))])  # archived now
    await _sign_in(memory.client)
    # Half an hour ago, written in UTC+02:00: read as UTC it would be an hour and a half ahead,
    # after the event, and replay nothing.
    since = (datetime.now(UTC) - timedelta(minutes=30)).astimezone(timezone(timedelta(hours=2)))

    response = await memory.client.post(
        f"/console/subscriptions/{sub['id']}/replay", data={"since": since.isoformat(timespec="seconds")}
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"/console/subscriptions/{sub['id']}?done=replayed-1"


@pytest.fixture
def amsterdam(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local time an hour or two off UTC, so "UTC" and "local" differ."""
    monkeypatch.setenv("TZ", "Europe/Amsterdam")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("amsterdam")
async def test_a_replay_from_a_time_without_an_offset_takes_it_as_utc(
    memory: MemoryApp, auth: dict[str, str], sink: WebhookSink
) -> None:
    sub = await subscribe(memory.client, auth, sink.url)
    memory.database.publish([validate_event(_event(1))])
    await _sign_in(memory.client)
    later = (datetime.now(UTC) + timedelta(minutes=1)).replace(tzinfo=None)  # the form's own field
    earlier = later - timedelta(minutes=2)

    after = await memory.client.post(
        f"/console/subscriptions/{sub['id']}/replay", data={"since": later.isoformat(timespec="minutes")}
    )
    before = await memory.client.post(
        f"/console/subscriptions/{sub['id']}/replay", data={"since": earlier.isoformat(timespec="minutes")}
    )

    assert after.headers["location"].endswith("?done=replayed-0")
    assert before.headers["location"].endswith("?done=replayed-1")


async def test_a_replay_from_a_time_that_is_not_one_says_so_and_replays_nothing(
    memory: MemoryApp, auth: dict[str, str], sink: WebhookSink
) -> None:
    sub = await subscribe(memory.client, auth, sink.url)
    memory.database.publish([validate_event(_event(1))])
    await _sign_in(memory.client)

    response = await memory.client.post(
        f"/console/subscriptions/{sub['id']}/replay", data={"since": "yesterday"}
    )

    assert response.headers["location"] == f"/console/subscriptions/{sub['id']}?done=bad-time"
    assert len(memory.database.deliveries_of(uuid.UUID(sub["id"]))) == 1  # only the delivery publish queued
