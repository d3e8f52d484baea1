"""A call whose change has no database transaction to carry its audit entry (the DLQ redrive is a
produce to Kafka) gets its entry from the recorder: written before the answer's last byte
leaves, so a caller who saw the answer knows the entry is in the trail. On the in-memory app,
called as a plain ASGI app to see each message it sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.types import Message

from hub.adapters.memory import (
    InMemoryConnectorTables,
    InMemoryDatabase,
    InMemoryEventLog,
    InMemoryProjectionStore,
    InMemorySubscriptionStore,
)
from hub.adapters.memory.audit import InMemoryAuditLog
from hub.adapters.memory.operations import InMemoryLogInspector, InMemoryOperationsStore
from hub.api.app import create_app
from hub.api.auth import TokenAuthenticator
from hub.api.context import ApiContext
from hub.ports.audit import AuditEntry, AuditQuery
from hub.settings import Settings
from subscriptions.ssrf import NetworkPolicy

TOKEN = "operator-test-token"


class WatchingTrail(InMemoryAuditLog):
    """Notes, when an entry is written, what the answer has sent so far."""

    def __init__(self, sent: list[Message]) -> None:
        super().__init__()
        self.sent, self.sent_when_recorded = sent, list[list[str]]()

    async def record(self, entry: AuditEntry) -> None:
        self.sent_when_recorded.append([_kind(m) for m in self.sent])
        await super().record(entry)


def _kind(message: Message) -> str:
    last = message["type"] == "http.response.body" and not message.get("more_body", False)
    return "last body" if last else str(message["type"])


async def _ready() -> dict[str, bool]:
    return {"test": True}


async def _redrive(app: Any, sent: list[Message], token: str, body: bytes = b'{"all": true}') -> list[str]:
    """``POST /api/v1/dlq/redrive {"all": true}`` (or ``body``); what the app sent, in order."""
    sent.clear()
    path = "/api/v1/dlq/redrive"
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"hub"), (b"authorization", f"Bearer {token}".encode()),
                    (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000), "server": ("hub", 80),
    }  # fmt: skip

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return [_kind(m) for m in sent]


def _app(tmp_path: Path, sent: list[Message]) -> tuple[Any, WatchingTrail]:
    trail = WatchingTrail(sent)
    log = InMemoryEventLog(partitions=3)
    db = InMemoryDatabase()
    ctx = ApiContext(
        settings=Settings(data_dir=tmp_path, admin_token=TOKEN),
        event_log=log,
        subscriptions=InMemorySubscriptionStore(db, trail),
        landscape=InMemoryProjectionStore([]),
        network_policy=NetworkPolicy.parse([]),
        auth=TokenAuthenticator(TOKEN),
        readiness=_ready,
        log_inspector=InMemoryLogInspector(log, dlq_topic="events.dlq"),
        operations=InMemoryOperationsStore(db, InMemoryConnectorTables()),
        audit=trail,
    )
    return create_app(ctx), trail


async def test_a_dlq_redrive_is_in_the_trail_before_its_answers_last_byte(tmp_path: Path) -> None:
    sent: list[Message] = []
    app, trail = _app(tmp_path, sent)

    assert await _redrive(app, sent, TOKEN) == ["http.response.start", "last body"]
    assert await _redrive(app, sent, "kh_not-a-token") == ["http.response.start", "last body"]

    entries = list(reversed((await trail.list(AuditQuery(), limit=10, cursor=None)).items))
    assert [(e.action, e.outcome, e.status, e.changes) for e in entries] == [
        ("POST /api/v1/dlq/redrive", "ok", 202, ["all"]),
        ("POST /api/v1/dlq/redrive", "refused", 401, []),  # refused before the body is read
    ]
    # each entry was written after the answer started and before its last byte was sent
    assert trail.sent_when_recorded == [["http.response.start"], ["http.response.start"]]


async def test_a_body_nested_too_deep_for_the_trails_field_names_still_gets_its_whole_answer(
    tmp_path: Path,
) -> None:
    """The trail reads a body's top-level field names; JSON nested 3,000 deep made that read
    raise (RecursionError) after the 400 had started, so its body was never sent."""
    sent: list[Message] = []
    app, trail = _app(tmp_path, sent)

    assert await _redrive(app, sent, TOKEN, b"[" * 3000) == ["http.response.start", "last body"]
    assert sent[0]["status"] in (400, 422)
    [entry] = (await trail.list(AuditQuery(), limit=10, cursor=None)).items
    assert (entry.action, entry.outcome, entry.changes) == ("POST /api/v1/dlq/redrive", "failed", [])
