"""The console's form posts on the in-memory app, without a browser: what a handler does with
what a form sends. The browser suite (tests/e2e/test_console_*browser.py) clicks through the
pages in Chromium; these run everywhere, in milliseconds."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from hub.adapters.memory import InMemorySubscriptionStore
from hub.adapters.memory.audit import InMemoryAuditLog
from hub.settings import Settings
from schemas import validate_event
from tests.support.hub_api import subscribe
from tests.support.memory_app import ADMIN_TOKEN, MemoryApp, memory_app
from tests.support.sink import WebhookSink

EVENT = {"specversion": "1.0", "id": "e-1", "source": "urn:nld:test", "type": "nl.test.thing.v1"}


@dataclass
class Replay:
    subscription: uuid.UUID
    post: Callable[[str], Awaitable[str]]


@pytest.fixture
async def replay(memory: MemoryApp, auth: dict[str, str], sink: WebhookSink) -> Replay:
    """A subscription with one event archived now, an operator signed in to the console, and
    its replay form to post a ``since`` to (the redirect's location back)."""
    sub = await subscribe(memory.client, auth, sink.url)
    memory.database.publish([validate_event(EVENT)])
    signed_in = await memory.client.post("/console/login", data={"token": ADMIN_TOKEN})
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console", signed_in.text
    page = f"/console/subscriptions/{sub['id']}"

    async def post(since: str) -> str:
        response = await memory.client.post(f"{page}/replay", data={"since": since})
        assert response.status_code == 303, response.text
        return response.headers["location"].removeprefix(page)

    return Replay(uuid.UUID(sub["id"]), post)


async def test_a_replay_from_a_time_with_an_offset_starts_at_that_instant(replay: Replay) -> None:
    # Half an hour ago, written in UTC+02:00: read as UTC it would be an hour and a half ahead,
    # after the event, and replay nothing.
    since = (datetime.now(UTC) - timedelta(minutes=30)).astimezone(timezone(timedelta(hours=2)))

    assert await replay.post(since.isoformat(timespec="seconds")) == "?done=replayed-1"


@pytest.fixture
def amsterdam(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's local time an hour or two off UTC, so "UTC" and "local" differ."""
    monkeypatch.setenv("TZ", "Europe/Amsterdam")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("amsterdam")
async def test_a_replay_from_a_time_without_an_offset_takes_it_as_utc(replay: Replay) -> None:
    later = (datetime.now(UTC) + timedelta(minutes=1)).replace(tzinfo=None)  # the form's own field
    earlier = later - timedelta(minutes=2)

    assert await replay.post(later.isoformat(timespec="minutes")) == "?done=replayed-0"
    assert await replay.post(earlier.isoformat(timespec="minutes")) == "?done=replayed-1"


async def test_a_replay_from_a_time_that_is_not_one_says_so_and_replays_nothing(
    replay: Replay, memory: MemoryApp
) -> None:
    assert await replay.post("yesterday") == "?done=bad-time"
    assert len(memory.database.deliveries_of(replay.subscription)) == 1  # only the one publish queued


@dataclass
class Audited:
    """The app with an audit trail, and a subscription with one event archived."""

    memory: MemoryApp
    subscription: str

    async def console_entries(self, auth: dict[str, str]) -> list[dict[str, Any]]:
        """The trail's console entries about the subscription (by its API path)."""
        target = f"/api/v1/subscriptions/{self.subscription}"
        trail = await self.memory.client.get("/api/v1/audit", params={"target": target}, headers=auth)
        assert trail.status_code == 200, trail.text
        return [e for e in trail.json()["items"] if e["action"].startswith("POST /console")]


@pytest.fixture
async def audited(settings: Settings, auth: dict[str, str], sink: WebhookSink) -> AsyncIterator[Audited]:
    async with memory_app(settings, audit=InMemoryAuditLog()) as memory:
        sub = await subscribe(memory.client, auth, sink.url)
        memory.database.publish([validate_event(EVENT)])
        yield Audited(memory, sub["id"])


async def test_a_console_action_is_in_the_audit_trail_under_its_object_with_the_operator(
    audited: Audited, auth: dict[str, str]
) -> None:
    client, sid = audited.memory.client, audited.subscription
    await client.post("/console/login", data={"token": ADMIN_TOKEN})
    page = f"/console/subscriptions/{sid}"
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    gone = f"{page}/deliveries/{uuid.uuid4()}/retry"
    for path, form in [(f"{page}/replay", {"since": since}), (f"{page}/pause", {}),
                       (f"/console/test-event/{sid}", {}), (gone, {})]:  # fmt: skip
        assert (await client.post(path, data=form)).status_code == 303

    console = await audited.console_entries(auth)
    signed_in = await client.get("/api/v1/audit", params={"action": "POST /console/login"}, headers=auth)

    assert sorted((e["action"], e["outcome"]) for e in console) == [
        ("POST /console/subscriptions/{subscription_id}/deliveries/{delivery_id}/retry", "failed"),  # gone
        ("POST /console/subscriptions/{subscription_id}/pause", "ok"),
        ("POST /console/subscriptions/{subscription_id}/replay", "ok"),
        ("POST /console/test-event/{subscription_id}", "ok"),
    ]
    target = f"/api/v1/subscriptions/{sid}"
    assert {(e["actor"]["role"], e["target"]) for e in console} == {("functioneel-beheerder", target)}
    assert signed_in.json()["items"] == []  # signing in is no change


async def test_the_console_does_not_pause_a_connectors_write_back_subscription(memory: MemoryApp) -> None:
    store = InMemorySubscriptionStore(memory.database)
    connector = uuid.uuid4()
    made = await store.create(
        sink=f"connector:{connector}",
        protocol="koppelhub-connector",
        source=None,
        types=["nl.signalen.melding.status-verzoek.v1"],
        filters=[],
        headers={},
        config={"connector": str(connector)},
        secret="whsec_" + "A" * 43,
    )
    await memory.client.post("/console/login", data={"token": ADMIN_TOKEN})

    paused = await memory.client.post(f"/console/subscriptions/{made.id}/pause")

    assert paused.headers["location"] == f"/console/subscriptions/{made.id}?done=managed-by-its-connector"
    assert (await store.get(made.id)).status == "active"


async def test_a_console_action_posted_without_signing_in_is_in_the_trail_as_refused(
    audited: Audited, auth: dict[str, str]
) -> None:
    transport = httpx.ASGITransport(app=audited.memory.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as anonymous:
        tried = await anonymous.post(f"/console/subscriptions/{audited.subscription}/pause")

    [entry] = await audited.console_entries(auth)

    assert (tried.status_code, tried.headers["location"]) == (303, "/console/login")
    assert (entry["outcome"], entry["status"], entry["actor"]["name"]) == ("refused", 401, None)
