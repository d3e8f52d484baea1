"""The documented HTTP contract (INTERFACES.md): auth, problem+json errors, and that a
rejected publish puts nothing on the event log.

On the in-memory app (tests/support/memory_app.py): "nothing was published" is read off the
event log twin itself. After the rejected request one good marker is published, and the log
must then hold the marker alone, which also proves the test looks at the log the API writes to.
The answers of the real server stack (framing, timeouts, connection caps) are in
tests/e2e/test_http_limits.py; delivery and readiness of a running hub in tests/e2e/test_api_contract.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from schemas.bindings import from_kafka_record
from tests.support.hub_api import SOURCE, TYPE, event, subscribe
from tests.support.memory_app import MemoryApp
from tests.support.sink import WebhookSink

PROBLEM = "application/problem+json"
STRUCTURED = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}


# --- fixtures and helpers -----------------------------------------------------------------


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = dict(response.json())
    assert body["status"] == status and body["title"]
    return body


def error_fields(problem: dict[str, Any]) -> set[tuple[int | None, str]]:
    return {(e.get("index"), e["field"]) for e in problem.get("errors", [])}


async def assert_only_marker_is_published(memory: MemoryApp, auth: dict[str, str]) -> None:
    """Publish a good marker; the event log holds it alone."""
    assert memory.published() == []
    marker = event("key-1")
    response = await memory.client.post(
        "/api/v1/events", content=json.dumps(marker), headers={**auth, **STRUCTURED}
    )
    assert response.status_code == 202, response.text
    assert [from_kafka_record(r.key, r.value, r.headers).id for r in memory.published()] == [marker["id"]]


SMALL_LIMITS = pytest.mark.parametrize(
    "settings", [{"max_event_bytes": 1024, "max_request_bytes": 4096}], indirect=True, ids=["small-limits"]
)
NO_ALLOWED_NETWORKS = pytest.mark.parametrize(
    "settings", [{"delivery": {"allow_networks": []}}], indirect=True, ids=["empty-allow-list"]
)


# --- authentication ---------------------------------------------------------------------------

MANAGEMENT_CALLS = [
    ("GET", "/api/v1/subscriptions", None),
    ("POST", "/api/v1/subscriptions", {"sink": "https://example.org/hook"}),
    ("GET", "/api/v1/subscriptions/{id}", None),
    ("DELETE", "/api/v1/subscriptions/{id}", None),
    ("GET", "/api/v1/subscriptions/{id}/deliveries", None),
]
BAD_CREDENTIALS = {
    "no-token": {},
    "wrong-token": {"Authorization": "Bearer not-the-admin-token"},
    "wrong-scheme": {"Authorization": "Basic dGVzdDp0ZXN0"},
    "bearer-without-token": {"Authorization": "Bearer"},
}


def assert_unauthorized(response: httpx.Response) -> None:
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].lower().startswith("bearer")


async def test_publish_without_a_valid_token_is_401_and_publishes_nothing(
    memory: MemoryApp, auth: dict[str, str]
) -> None:
    for name, credentials in BAD_CREDENTIALS.items():
        response = await memory.client.post(
            "/api/v1/events", content=json.dumps(event("key-1")), headers={**credentials, **STRUCTURED}
        )
        assert response.status_code == 401, name
        assert_unauthorized(response)
    await assert_only_marker_is_published(memory, auth)


@pytest.mark.parametrize(
    "method,path,body", MANAGEMENT_CALLS, ids=[f"{m} {p}" for m, p, _ in MANAGEMENT_CALLS]
)
async def test_every_management_call_without_a_valid_token_is_401(
    api_client: httpx.AsyncClient,
    auth: dict[str, str],
    sink: WebhookSink,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    existing = await subscribe(api_client, auth, sink.url)
    for name, credentials in BAD_CREDENTIALS.items():
        response = await api_client.request(
            method, path.format(id=existing["id"]), json=body, headers=credentials
        )
        assert response.status_code == 401, name
        assert_unauthorized(response)
    # The rejected calls changed nothing.
    listing = (await api_client.get("/api/v1/subscriptions", headers=auth)).json()
    assert [s["id"] for s in listing["items"]] == [existing["id"]]


# --- publishing: invalid events ----------------------------------------------------------------

INVALID_EVENTS = {
    "missing-source": ({"source": None}, "source"),
    "missing-id": ({"id": None}, "id"),
    "specversion-0.3": ({"specversion": "0.3"}, "specversion"),
    "type-not-reverse-dns": ({"type": "gebruik gewijzigd"}, "type"),
    "naive-time": ({"time": "2026-11-22T10:00:00"}, "time"),
}


def broken(subject: str, changes: dict[str, Any]) -> dict[str, Any]:
    body = event(subject, **changes)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize("changes,field", INVALID_EVENTS.values(), ids=INVALID_EVENTS.keys())
async def test_an_invalid_structured_event_is_400_naming_the_field(
    api_client: httpx.AsyncClient, auth: dict[str, str], changes: dict[str, Any], field: str
) -> None:
    response = await api_client.post(
        "/api/v1/events", content=json.dumps(broken("key-1", changes)), headers={**auth, **STRUCTURED}
    )
    problem = assert_problem(response, 400)
    assert error_fields(problem) == {(None, field)}, problem


async def test_a_batch_with_two_bad_events_is_400_naming_both_and_publishes_none_of_it(
    memory: MemoryApp, auth: dict[str, str]
) -> None:
    batch = [
        event("key-1"),
        broken("key-1", {"source": None}),
        event("key-1"),
        broken("key-1", {"time": "2026-11-22T10:00:00"}),
        event("key-1"),
    ]
    response = await memory.client.post(
        "/api/v1/events", content=json.dumps(batch), headers={**auth, **BATCH}
    )
    problem = assert_problem(response, 400)
    assert error_fields(problem) == {(1, "source"), (3, "time")}, problem
    await assert_only_marker_is_published(memory, auth)


@pytest.mark.parametrize(
    "drop,field", [("ce-source", "source"), ("ce-specversion", "specversion"), ("ce-type", "type")]
)
async def test_an_invalid_binary_event_is_400_naming_the_field(
    api_client: httpx.AsyncClient, auth: dict[str, str], drop: str, field: str
) -> None:
    headers = {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-source": SOURCE,
        "ce-type": TYPE,
    }
    del headers[drop]
    response = await api_client.post("/api/v1/events", content=b"{}", headers={**auth, **headers})
    problem = assert_problem(response, 400)
    assert error_fields(problem) == {(None, field)}, problem


@pytest.mark.parametrize(
    "body,headers",
    [
        (b"{not json", STRUCTURED),
        (b'{"specversion": "1.0", ', STRUCTURED),
        (b"[{]", BATCH),
        (b"\xff\xfe{}", STRUCTURED),
    ],
    ids=["garbage", "truncated", "batch-garbage", "not-utf8"],
)
async def test_a_body_that_is_not_json_is_400(
    api_client: httpx.AsyncClient, auth: dict[str, str], body: bytes, headers: dict[str, str]
) -> None:
    response = await api_client.post("/api/v1/events", content=body, headers={**auth, **headers})
    assert_problem(response, 400)


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "application/xml"])
async def test_an_unsupported_content_type_without_ce_headers_is_415(
    api_client: httpx.AsyncClient, auth: dict[str, str], content_type: str
) -> None:
    response = await api_client.post(
        "/api/v1/events", content=json.dumps(event()), headers={**auth, "content-type": content_type}
    )
    assert_problem(response, 415)


# --- publishing: size limits -----------------------------------------------------------------


@SMALL_LIMITS
async def test_a_structured_event_over_the_size_limit_is_413_and_not_published(
    memory: MemoryApp, auth: dict[str, str]
) -> None:
    big = event("key-1", data={"text": "x" * 1100})
    response = await memory.client.post(
        "/api/v1/events", content=json.dumps(big), headers={**auth, **STRUCTURED}
    )
    assert_problem(response, 413)
    await assert_only_marker_is_published(memory, auth)


@SMALL_LIMITS
async def test_a_batch_with_one_event_over_the_size_limit_is_413_and_publishes_none_of_it(
    memory: MemoryApp, auth: dict[str, str]
) -> None:
    batch = [event("key-1"), event("key-1", data={"text": "x" * 1100}), event("key-1")]
    response = await memory.client.post(
        "/api/v1/events", content=json.dumps(batch), headers={**auth, **BATCH}
    )
    problem = assert_problem(response, 413)
    assert {e.get("index") for e in problem["errors"]} == {1}, problem
    await assert_only_marker_is_published(memory, auth)


@SMALL_LIMITS
async def test_a_binary_event_over_the_size_limit_is_413(
    api_client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    headers = {
        **auth,
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-source": SOURCE,
        "ce-type": TYPE,
    }
    response = await api_client.post(
        "/api/v1/events", content=json.dumps({"text": "x" * 1100}), headers=headers
    )
    assert_problem(response, 413)


@SMALL_LIMITS
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_request_over_the_size_limit_is_413_and_publishes_none_of_it(
    memory: MemoryApp, auth: dict[str, str], framing: str
) -> None:
    # Six events each well under the 1024-byte event limit, together over the 4096-byte request limit.
    batch = [event("key-1", data={"text": "x" * 600}) for _ in range(6)]
    payload = json.dumps(batch).encode()
    assert len(payload) > 4096

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 1000):
            yield payload[start : start + 1000]

    content: Any = payload if framing == "content-length" else chunks()
    response = await memory.client.post("/api/v1/events", content=content, headers={**auth, **BATCH})
    assert_problem(response, 413)
    await assert_only_marker_is_published(memory, auth)


# --- subscriptions -----------------------------------------------------------------------------


async def test_create_returns_201_with_an_id_and_a_secret_that_is_never_shown_again(
    api_client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    response = await api_client.post(
        "/api/v1/subscriptions",
        json={"sink": sink.url, "types": [TYPE], "protocolsettings": {"headers": {"X-Tenant": "a"}}},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > len("whsec_") + 30
    assert uuid.UUID(created["id"])
    assert created["sink"] == sink.url and created["types"] == [TYPE]
    assert created["protocolsettings"]["headers"] == {"X-Tenant": "a"}

    one = await api_client.get(f"/api/v1/subscriptions/{created['id']}", headers=auth)
    listing = await api_client.get("/api/v1/subscriptions", headers=auth)
    assert one.status_code == 200 and listing.status_code == 200
    assert one.json()["id"] == created["id"]
    assert [s["id"] for s in listing.json()["items"]] == [created["id"]]
    for shown in (one, listing):
        assert "secret" not in shown.text
        assert secret not in shown.text
        assert secret.removeprefix("whsec_") not in shown.text


async def test_get_of_an_unknown_subscription_is_a_404_problem(
    api_client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    unknown = uuid.uuid4()
    assert_problem(await api_client.get(f"/api/v1/subscriptions/{unknown}", headers=auth), 404)
    assert_problem(await api_client.get(f"/api/v1/subscriptions/{unknown}/deliveries", headers=auth), 404)
    assert_problem(await api_client.delete(f"/api/v1/subscriptions/{unknown}", headers=auth), 404)


async def test_delete_is_204_and_the_subscription_is_gone_afterwards(
    api_client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    created = await subscribe(api_client, auth, sink.url)
    url = f"/api/v1/subscriptions/{created['id']}"
    deleted = await api_client.delete(url, headers=auth)
    assert deleted.status_code == 204 and deleted.content == b""
    assert_problem(await api_client.get(url, headers=auth), 404)
    assert_problem(await api_client.delete(url, headers=auth), 404)
    assert (await api_client.get("/api/v1/subscriptions", headers=auth)).json()["items"] == []


@pytest.mark.parametrize(
    "bad_filter,dialect",
    [
        ({"sql": "type = 'x'"}, "sql"),
        ({"regex": {"type": "^nl\\..*"}}, "regex"),
        ({"all": [{"exact": {"type": TYPE}}, {"regex": {"type": ".*"}}]}, "regex"),
    ],
    ids=["sql", "regex", "nested-regex"],
)
async def test_an_unknown_filter_dialect_is_400_naming_it(
    api_client: httpx.AsyncClient,
    auth: dict[str, str],
    sink: WebhookSink,
    bad_filter: dict[str, Any],
    dialect: str,
) -> None:
    response = await api_client.post(
        "/api/v1/subscriptions", json={"sink": sink.url, "filters": [bad_filter]}, headers=auth
    )
    problem = assert_problem(response, 400)
    assert dialect in problem["detail"], problem
    assert any(e["field"].startswith("filters") for e in problem["errors"]), problem
    assert (await api_client.get("/api/v1/subscriptions", headers=auth)).json()["items"] == []


@NO_ALLOWED_NETWORKS
@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "localhost.", "[::1]", "127.1", "2130706433", "[::ffff:127.0.0.1]"]
)
async def test_a_loopback_sink_is_400_while_the_allow_list_is_empty(
    api_client: httpx.AsyncClient, auth: dict[str, str], host: str
) -> None:
    response = await api_client.post(
        "/api/v1/subscriptions", json={"sink": f"http://{host}:9/hook"}, headers=auth
    )
    problem = assert_problem(response, 400)
    assert any(e["field"] == "sink" for e in problem["errors"]), problem
    assert (await api_client.get("/api/v1/subscriptions", headers=auth)).json()["items"] == []


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "[fd00::1]", "[fe80::1]"]
)
async def test_a_sink_on_a_private_network_outside_the_allow_list_is_400(
    api_client: httpx.AsyncClient, auth: dict[str, str], host: str
) -> None:
    # The test settings allow 127.0.0.0/8 only; every other internal network stays blocked.
    response = await api_client.post(
        "/api/v1/subscriptions", json={"sink": f"http://{host}/hook"}, headers=auth
    )
    problem = assert_problem(response, 400)
    assert any(e["field"] == "sink" for e in problem["errors"]), problem
    assert (await api_client.get("/api/v1/subscriptions", headers=auth)).json()["items"] == []


@pytest.mark.parametrize(
    "sink_url",
    ["ftp://example.org/hook", "file:///etc/passwd", "mailto:ops@example.org", "/relative/hook", ""],
)
async def test_a_sink_that_is_not_an_http_url_is_400(
    api_client: httpx.AsyncClient, auth: dict[str, str], sink_url: str
) -> None:
    response = await api_client.post("/api/v1/subscriptions", json={"sink": sink_url}, headers=auth)
    problem = assert_problem(response, 400)
    assert any(e["field"] == "sink" for e in problem["errors"]), problem


async def test_a_subscription_without_a_sink_is_400_naming_it(
    api_client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await api_client.post("/api/v1/subscriptions", json={"types": [TYPE]}, headers=auth)
    problem = assert_problem(response, 400)
    assert any(e["field"] == "sink" for e in problem["errors"]), problem


async def test_an_unknown_subscription_property_is_400_naming_it(
    api_client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    # "filter" for "filters" must not silently subscribe to everything.
    body = {"sink": sink.url, "filter": [{"exact": {"type": TYPE}}]}
    problem = assert_problem(await api_client.post("/api/v1/subscriptions", json=body, headers=auth), 400)
    assert any(e["field"] == "filter" for e in problem["errors"]), problem


async def test_the_list_pages_with_a_next_url_that_yields_the_rest(
    api_client: httpx.AsyncClient, auth: dict[str, str], sink: WebhookSink
) -> None:
    created = [(await subscribe(api_client, auth, sink.url))["id"] for _ in range(3)]
    first = await api_client.get("/api/v1/subscriptions", params={"limit": 2}, headers=auth)
    assert first.status_code == 200, first.text
    page1 = first.json()
    assert len(page1["items"]) == 2 and page1["next"]
    second = await api_client.get(page1["next"], headers=auth)
    assert second.status_code == 200, second.text
    page2 = second.json()
    assert len(page2["items"]) == 1 and page2["next"] is None
    seen = [s["id"] for s in page1["items"] + page2["items"]]
    assert sorted(seen) == sorted(created)


async def test_the_list_rejects_a_forged_cursor_and_a_bad_limit(
    api_client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for params in ({"cursor": "not-a-cursor"}, {"limit": 0}, {"limit": "many"}):
        assert_problem(await api_client.get("/api/v1/subscriptions", params=params, headers=auth), 400)


# --- operations and documentation -----------------------------------------------------------


async def test_healthz_is_200_without_a_token(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/healthz")
    assert response.status_code == 200


async def test_every_response_carries_the_api_version_header(
    api_client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    responses = [
        await api_client.get("/healthz"),
        await api_client.get("/api/v1/subscriptions", headers=auth),
        await api_client.get("/api/v1/subscriptions"),  # 401
        await api_client.get(f"/api/v1/subscriptions/{uuid.uuid4()}", headers=auth),  # 404
        await api_client.post("/api/v1/events", content=b"{", headers={**auth, **STRUCTURED}),  # 400
    ]
    assert [r.status_code for r in responses] == [200, 200, 401, 404, 400]
    for response in responses:
        assert response.headers.get("API-Version"), response.headers


async def test_unknown_routes_and_methods_answer_with_problem_json(
    api_client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    assert_problem(await api_client.get("/api/v1/nothing-here", headers=auth), 404)
    assert_problem(await api_client.put("/api/v1/subscriptions", headers=auth), 405)


async def test_the_openapi_document_describes_events_and_subscriptions(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "post" in paths["/api/v1/events"]
    assert {"get", "post"} <= paths["/api/v1/subscriptions"].keys()
