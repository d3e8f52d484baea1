"""The OpenAPI document says what the API really answers (issue 11): no 422 anywhere, the
problem schema on every error, bearer security, the publish call's three content modes, and
stable problem types that the document explains."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.api.problems import PROBLEM_KINDS, problem_type
from tests.support.memory_app import ADMIN_TOKEN, MemoryApp

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PROBLEM_REF = "#/components/schemas/Problem"


@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, item in doc["paths"].items() for method, op in item.items()]


async def test_no_operation_documents_422_and_every_error_is_a_problem(openapi: dict[str, Any]) -> None:
    for method, path, op in _operations(openapi):
        assert "422" not in op["responses"], (method, path)
        for status, response in op["responses"].items():
            if int(status) >= 400:
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": PROBLEM_REF}, (method, path, status)
    assert "HTTPValidationError" not in openapi["components"]["schemas"]


async def test_everything_under_api_needs_the_bearer_scheme(openapi: dict[str, Any]) -> None:
    assert openapi["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin token (`.koppelhub/admin-token`) or another API token",
    }
    for method, path, op in _operations(openapi):
        expected = [{"bearer": []}] if path.startswith("/api/") else None
        assert op.get("security") == expected, (method, path)
        if path.startswith("/api/"):
            assert {"401", "403"} <= op["responses"].keys(), (method, path)


async def test_publish_documents_its_three_content_modes_and_its_real_answer(openapi: dict[str, Any]) -> None:
    op = openapi["paths"]["/api/v1/events"]["post"]

    content = op["requestBody"]["content"]
    assert content["application/cloudevents+json"]["schema"] == {"$ref": "#/components/schemas/CloudEvent"}
    assert content["application/cloudevents-batch+json"]["schema"]["type"] == "array"
    assert "application/json" in content
    assert {"ce-id", "ce-source", "ce-type", "ce-specversion"} <= {p["name"] for p in op["parameters"]}
    accepted = op["responses"]["202"]["content"]["application/json"]
    assert accepted["schema"]["properties"]["accepted"]["type"] == "array"
    assert {"400", "413", "415", "503"} <= op["responses"].keys()
    envelope = openapi["components"]["schemas"]["CloudEvent"]
    assert envelope["required"] == ["specversion", "id", "source", "type"]


async def test_the_statuses_the_api_answers_are_the_documented_ones(
    memory: MemoryApp, client: httpx.AsyncClient, openapi: dict[str, Any]
) -> None:
    """Observed ⊆ documented: a request per kind of failure, each answer's status looked up in
    the document under the operation that answered it."""
    some_id = "00000000-0000-0000-0000-000000000001"
    structured = {"content-type": "application/cloudevents+json"}
    too_large = b"x" * (memory.app.state.ctx.settings.max_request_bytes + 1)
    events = ("post", "/api/v1/events", "/api/v1/events")
    calls: list[tuple[str, str, str, dict[str, Any]]] = [
        (*events, {"content": b"{}", "headers": {"content-type": "text/plain"}}),
        (*events, {"json": {}, "headers": structured}),
        (*events, {"content": too_large, "headers": structured}),
        ("get", "/api/v1/subscriptions", "/api/v1/subscriptions", {"params": {"limit": "0"}}),
        ("get", "/api/v1/subscriptions", "/api/v1/subscriptions", {"params": {"cursor": "nope"}}),
        ("get", "/api/v1/subscriptions/{subscription_id}", "/api/v1/subscriptions/not-a-uuid", {}),
        ("get", "/api/v1/subscriptions/{subscription_id}", f"/api/v1/subscriptions/{some_id}", {}),
        ("delete", "/api/v1/subscriptions/{subscription_id}", f"/api/v1/subscriptions/{some_id}", {}),
        ("post", "/api/v1/subscriptions", "/api/v1/subscriptions", {"json": {"sink": "ftp://x"}}),
        ("post", "/api/v1/subscriptions", "/api/v1/subscriptions", {"json": {"sink": "http://10.1.2.3/h"}}),
        ("get", "/api/v1/gebruik", "/api/v1/gebruik", {"params": {"kleur": "rood"}}),
        ("get", "/api/v1/gebruik/{object_id}", "/api/v1/gebruik/nope", {}),
        ("get", "/api/v1/imports", "/api/v1/imports", {}),
        ("get", "/api/v1/connectors", "/api/v1/connectors", {}),
    ]
    for method, template, url, options in calls:
        for auth in (AUTH, {}, {"Authorization": "Bearer wrong"}):
            headers = {**options.get("headers", {}), **auth}
            response = await client.request(method, url, **{**options, "headers": headers})
            documented = openapi["paths"][template][method]["responses"]
            assert str(response.status_code) in documented, (method, url, response.status_code, response.text)
            if response.status_code >= 400:
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["type"].startswith("urn:koppelhub:problem:"), response.text


async def test_validation_messages_carry_no_library_wording(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/subscriptions", json={"sink": "ftp://x", "extra": 1}, headers=AUTH)

    assert response.status_code == 400
    text = response.text
    assert "Value error" not in text and "Input should" not in text and "Extra inputs" not in text


async def test_a_sink_refusal_names_the_setting_that_allows_it(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/subscriptions", json={"sink": "http://10.1.2.3/h"}, headers=AUTH)

    assert response.status_code == 400
    assert response.json()["type"] == "urn:koppelhub:problem:sink-refused"
    assert "KOPPELHUB_DELIVERY_ALLOW_NETWORKS" in response.json()["detail"]


def _titles_in_code() -> set[str]:
    """Every literal title passed to the problem helpers anywhere under hub/."""
    calls = {"ProblemError", "problem", "_answer", "_refuse", "BodyRefused", "_refused"}
    titles = set()
    for path in (Path(__file__).parents[3] / "hub").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            strings = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name == "_refused" and len(strings) >= 2:  # (field, title, detail)
                titles.add(strings[1])
            elif name in calls - {"_refused"} and strings:
                titles.add(strings[0])
    return titles


def test_every_problem_title_in_the_code_has_a_documented_stable_type() -> None:
    titles = _titles_in_code()

    assert {"Invalid CloudEvent", "Not found", "Sink refused", "Event type not accepted"} <= titles
    assert titles - PROBLEM_KINDS.keys() == set(), "add these titles to hub.api.problems.PROBLEM_KINDS"
    assert problem_type("Invalid CloudEvent") == "urn:koppelhub:problem:invalid-cloudevent"


async def test_the_problem_schema_explains_every_problem_type(openapi: dict[str, Any]) -> None:
    description = openapi["components"]["schemas"]["Problem"]["description"]

    for title in PROBLEM_KINDS:
        assert problem_type(title) in description


async def test_unknown_paths_and_methods_are_problems_with_a_type(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nowhere")
    wrong = await client.put("/healthz")

    assert (missing.status_code, missing.json()["type"]) == (404, "urn:koppelhub:problem:not-found")
    assert (wrong.status_code, wrong.json()["type"]) == (405, "urn:koppelhub:problem:method-not-allowed")
