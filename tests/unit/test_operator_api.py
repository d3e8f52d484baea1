"""``/api/v1/status`` and ``/api/v1/dlq`` on the in-memory app: the documents, paging, redrive,
bad input as problem+json, and a status that still answers when the log cannot be read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from hub.adapters.kafka_operators import dead_letter_of
from hub.adapters.memory import (
    InMemoryConnectorTables,
    InMemoryDatabase,
    InMemoryEventLog,
    InMemoryProjectionStore,
    InMemorySubscriptionStore,
)
from hub.adapters.memory.operations import InMemoryLogInspector, InMemoryOperationsStore
from hub.api.app import create_app
from hub.api.auth import TokenAuthenticator
from hub.api.context import ApiContext
from hub.errors import BrokerUnavailable
from hub.ports.log import LogRecord
from hub.ports.operators import LogStatus
from hub.settings import Settings
from schemas import validate_event
from schemas.bindings import to_kafka_record
from subscriptions.ssrf import NetworkPolicy

TOKEN = "operator-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class App:
    client: httpx.AsyncClient
    log: InMemoryEventLog
    ctx: ApiContext


def _event(n: int) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": f"e-{n}",
        "source": "urn:nld:test",
        "type": "nl.test.thing.v1",
        "subject": f"key-{n}",
        "data": {"n": n},
    }


async def _ready() -> dict[str, bool]:
    return {"test": True}


@pytest.fixture
async def app(tmp_path: object) -> AsyncIterator[App]:
    log = InMemoryEventLog(partitions=3)
    db = InMemoryDatabase()
    ctx = ApiContext(
        settings=Settings(data_dir=tmp_path, admin_token=TOKEN),
        event_log=log,
        subscriptions=InMemorySubscriptionStore(db),
        landscape=InMemoryProjectionStore([]),
        network_policy=NetworkPolicy.parse([]),
        auth=TokenAuthenticator(TOKEN),
        readiness=_ready,
        log_inspector=InMemoryLogInspector(log, dlq_topic="events.dlq"),
        operations=InMemoryOperationsStore(db, InMemoryConnectorTables()),
    )
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        yield App(client, log, ctx)


async def _park(log: InMemoryEventLog, n: int, error: Exception) -> None:
    record = to_kafka_record(validate_event(_event(n)))
    origin = LogRecord(log.topic, 1, n, record.key, record.value, tuple(record.headers))
    await log.dead_letter(record.key, record.value, record.headers, error, origin)


async def test_status_needs_the_operator_right(app: App) -> None:
    response = await app.client.get("/api/v1/status")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_status_reports_lag_against_the_groups_commits_and_the_dlq_count(app: App) -> None:
    await app.log.publish([validate_event(_event(n)) for n in range(12)])
    member = app.log.consumer()
    await member.start()
    read = await member.poll(max_records=5, timeout_s=1)
    await member.commit({r.partition: r.offset + 1 for r in read})
    await _park(app.log, 99, ValueError("bad"))

    doc = (await app.client.get("/api/v1/status", headers=AUTH)).json()

    parts = {p["partition"]: p for p in doc["log"]["partitions"]}
    assert sum(p["endOffset"] for p in parts.values()) == 12
    committed = app.log.committed()
    for p, part in parts.items():
        assert part["committed"] == committed.get(p)
        assert part["lag"] == part["endOffset"] - (committed.get(p) or 0)
    assert doc["log"]["lag"] == 12 - sum(committed.values()) and doc["log"]["lag"] < 12
    assert doc["log"]["members"] == [
        {
            "memberId": "member-0",
            "clientId": "",
            "host": "",
            "pid": None,
            "partitions": [0, 1, 2],
            "lag": doc["log"]["lag"],
        }
    ]
    assert doc["dlq"] == {"topic": "events.dlq", "records": 1}
    assert doc["outbox"] == {
        "pending": 0,
        "failed": 0,
        "dead": 0,
        "oldestPending": None,
        "oldestPendingAgeSeconds": None,
        "estimated": [],
    }
    await member.stop()


async def test_status_still_answers_from_the_store_when_the_log_cannot_be_read(app: App) -> None:
    class Unreachable(InMemoryLogInspector):
        async def status(self) -> LogStatus:
            raise BrokerUnavailable("cannot reach Kafka")

    app.ctx.log_inspector = Unreachable(app.log)
    response = await app.client.get("/api/v1/status", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["log"] == {"error": "cannot reach Kafka"}
    assert response.json()["outbox"]["pending"] == 0


async def test_dlq_lists_records_with_their_error_and_event_page_by_page(app: App) -> None:
    for n in range(3):
        await _park(app.log, n, ValueError(f"broken {n}"))

    first = (await app.client.get("/api/v1/dlq?limit=2", headers=AUTH)).json()
    assert [i["id"] for i in first["items"]] == ["0:0", "0:1"] and first["next"] == "0:1"
    item = first["items"][0]
    assert (item["koppelhub_error"], item["koppelhub_error_class"]) == ("broken 0", "ValueError")
    assert item["koppelhub_origin"] == f"{app.log.topic}/1/0"
    assert item["event"]["id"] == "e-0" and item["key"] == "key-0" and item["decodeError"] is None

    rest = (await app.client.get(f"/api/v1/dlq?limit=2&after={first['next']}", headers=AUTH)).json()
    assert [i["id"] for i in rest["items"]] == ["0:2"] and rest["next"] is None


async def test_redrive_republishes_the_chosen_records_without_their_parking_headers(app: App) -> None:
    for n in range(2):
        await _park(app.log, n, ValueError("broken"))

    response = await app.client.post(
        "/api/v1/dlq/redrive", json={"offsets": [{"partition": 0, "offset": 1}, "0:7"]}, headers=AUTH
    )

    assert response.status_code == 202
    assert response.json() == {
        "redriven": [{"partition": 0, "offset": 1}],
        "skipped": [{"partition": 0, "offset": 7, "reason": "no such record in the DLQ"}],
    }
    [republished] = [r for p in app.log.partitions for r in p]
    assert all(not name.startswith("koppelhub_") for name, _ in republished.headers)
    assert dict(republished.headers)["ce_id"] == b"e-1"

    everything = await app.client.post("/api/v1/dlq/redrive", json={"all": True}, headers=AUTH)
    assert len(everything.json()["redriven"]) == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, 'either "offsets"'),
        ({"offsets": ["0:1"], "all": True}, 'either "offsets"'),
        ({"offsets": ["first"]}, "partition:offset"),
        ({"offsets": [{"partition": -1, "offset": 0}]}, "partition"),
    ],
)
async def test_a_bad_redrive_request_is_a_400_that_says_what_to_send(
    app: App, body: dict[str, object], reason: str
) -> None:
    response = await app.client.post("/api/v1/dlq/redrive", json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert reason in response.json()["detail"]


async def test_a_bad_dlq_cursor_is_a_400(app: App) -> None:
    response = await app.client.get("/api/v1/dlq?after=" + str(uuid.uuid4()), headers=AUTH)
    assert response.status_code == 400 and "partition:offset" in response.json()["detail"]


def test_a_parked_record_whose_time_is_out_of_range_is_listed_with_why_it_does_not_decode() -> None:
    """The projector parks it (its time is valid RFC 3339, out of range once in UTC); listing the
    DLQ decodes it again, and that must not fail the page."""
    ce = {
        "specversion": "1.0",
        "id": "a",
        "source": "urn:x",
        "type": "nl.test.x",
        "time": "0001-01-01T00:00:00+01:00",
    }
    headers = [(f"ce_{k}", v.encode()) for k, v in ce.items()] + [
        ("koppelhub_error", b"event.time: out of range")
    ]

    parked = dead_letter_of(0, 5, None, None, b"", headers)

    assert parked.event is None and parked.decode_error is not None and "out of range" in parked.decode_error
    assert parked.error == "event.time: out of range"
