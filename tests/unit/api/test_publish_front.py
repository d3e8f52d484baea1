"""``POST /api/v1/events`` takes its own chain (hub.api.app.HubApp): the same answers as any call.

The publish call skips FastAPI's and Starlette's layers, but keeps every middleware of the hub:
each answer carries ``API-Version`` and ``X-Request-Id``, every refusal is problem+json, a body
is bounded in size and time, and refused attempts are in the audit trail. Raw ASGI calls here
(as uvicorn makes them), so the body can arrive in parts or not at all.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Message

from hub.adapters.memory import (
    InMemoryDatabase,
    InMemoryEventLog,
    InMemoryProjectionStore,
    InMemorySubscriptionStore,
)
from hub.adapters.memory.audit import InMemoryAuditLog
from hub.adapters.memory.tokens import InMemoryTokenStore
from hub.api.app import API_VERSION, HubApp, create_app
from hub.api.auth import ADMIN, TokenAuthenticator
from hub.api.context import ApiContext
from hub.ports.audit import AuditQuery
from hub.services.tokens import TokenLookup, TokenService
from hub.settings import Settings
from subscriptions.ssrf import NetworkPolicy

TOKEN = "front-admin-token"
STRUCTURED = b"application/cloudevents+json"


def _event(event_id: str = "e-1") -> dict[str, Any]:
    return {
        "specversion": "1.0", "id": event_id, "source": "urn:nld:oin:00000001234567890000:systeem:front",
        "type": "nl.signalen.melding.gewijzigd.v1", "subject": "app-1", "data": {"n": 1},
    }  # fmt: skip


class Front:
    """The app with an audit trail and a token store, called as uvicorn calls it."""

    def __init__(self, app: HubApp, audit: InMemoryAuditLog, reader_token: str):
        self.app, self.audit, self.reader_token = app, audit, reader_token

    async def post(
        self,
        parts: list[bytes],
        *,
        token: str | None = TOKEN,
        content_type: bytes = STRUCTURED,
        length: int | None = None,
        stall: bool = False,
        request_id: bytes | None = None,
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        """POST ``parts`` as the body's messages (``stall``: then nothing more arrives)."""
        headers = [(b"host", b"hub"), (b"content-type", content_type)]
        if token is not None:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        if request_id is not None:
            headers.append((b"x-request-id", request_id))
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/api/v1/events", "raw_path": b"/api/v1/events", "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("hub", 80),
        }  # fmt: skip
        messages: list[Message] = [
            {"type": "http.request", "body": part, "more_body": stall or i < len(parts) - 1}
            for i, part in enumerate(parts)
        ]
        sent: list[Message] = []

        async def receive() -> Message:
            if messages:
                return messages.pop(0)
            await asyncio.sleep(3600)  # a stalled body: only the guard's deadline ends this
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            sent.append(message)

        await asyncio.wait_for(self.app(scope, receive, send), timeout=10)
        start = sent[0]
        body = b"".join(m.get("body", b"") for m in sent[1:])
        return start["status"], dict(start["headers"]), body


@pytest.fixture
async def front(tmp_path: Path) -> Front:
    tokens = InMemoryTokenStore()
    _, reader = await TokenService(tokens, landscape=None).create(
        ADMIN, name="reader", role="gebruik-raadpleger", organisatie="gm0001", sources=[]
    )
    audit = InMemoryAuditLog()
    db = InMemoryDatabase()

    async def ready() -> dict[str, bool]:
        return {"api": True}

    settings = Settings(
        data_dir=tmp_path, admin_token=TOKEN, max_request_bytes=4096, http_body_timeout_seconds=0.2
    )
    ctx = ApiContext(
        settings=settings,
        event_log=InMemoryEventLog(partitions=3),
        subscriptions=InMemorySubscriptionStore(db),
        landscape=InMemoryProjectionStore(),
        network_policy=NetworkPolicy.parse([]),
        auth=TokenAuthenticator(TOKEN, tokens=TokenLookup(tokens)),
        readiness=ready,
        audit=audit,
    )
    return Front(create_app(ctx), audit, reader)


def _body(value: Any) -> bytes:
    return json.dumps(value).encode()


CASES = {
    "accepted": (202, {}),
    "invalid event": (400, {"parts": [_body({"specversion": "1.0"})]}),
    "no token": (401, {"token": None}),
    "role without the right": (403, {"token": "reader"}),
    "declared too large": (413, {"length": 10_000}),
    "too large as it arrives": (413, {"parts": [b"[" + b" " * 3000, b" " * 3000 + b"]"]}),
    "body too slow": (408, {"parts": [b'{"specversion":'], "stall": True}),
    "unknown content mode": (415, {"content_type": b"text/plain"}),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_every_answer_to_a_publish_carries_api_version_and_request_id_and_refusals_are_problems(
    front: Front, case: str
) -> None:
    status, options = CASES[case]
    options = dict(options)
    if options.get("token") == "reader":
        options["token"] = front.reader_token
    parts = options.pop("parts", [_body(_event(f"e-{case}"))])

    got, headers, body = await front.post(parts, **options)

    assert got == status, body
    assert headers[b"api-version"] == API_VERSION.encode()
    assert headers[b"x-request-id"]
    if status == 202:
        assert json.loads(body) == {"accepted": [f"e-{case}"]}
    else:
        assert headers[b"content-type"] == b"application/problem+json"
        problem = json.loads(body)
        assert problem["status"] == status and problem["detail"]


async def test_a_publish_echoes_the_callers_request_id(front: Front) -> None:
    _, headers, _ = await front.post([_body(_event())], request_id=b"trace-me-1")
    assert headers[b"x-request-id"] == b"trace-me-1"


async def test_refused_publishes_are_in_the_audit_trail_and_accepted_ones_are_not(front: Front) -> None:
    assert (await front.post([_body(_event("ok"))]))[0] == 202
    assert (await front.post([_body(_event("anonymous"))], token="kh_not-a-token"))[0] == 401
    assert (await front.post([_body(_event("reader"))], token=front.reader_token))[0] == 403

    entries = (await front.audit.list(AuditQuery(), limit=10, cursor=None)).items
    assert sorted((e.action, e.outcome, e.status, e.actor_name) for e in entries) == [
        ("POST /api/v1/events", "refused", 401, None),
        ("POST /api/v1/events", "refused", 403, "reader"),
    ]
