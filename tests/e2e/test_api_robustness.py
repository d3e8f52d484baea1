"""Input that reaches the real store still gets a 4xx, never a 500 (the API role alone on
the real database: nothing here needs an event delivered)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

pytestmark = pytest.mark.e2e


def cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/subscriptions?cursor={cursor(1)}",
        f"/api/v1/subscriptions?cursor={cursor('x', 'y', 'z')}",
        f"/api/v1/subscriptions?cursor={cursor('not-a-time', 'not-a-uuid')}",
    ],
)
async def test_a_forged_cursor_of_any_shape_is_a_400(
    api_client: httpx.AsyncClient, auth: dict[str, str], path: str
) -> None:
    response = await api_client.get(path, headers=auth)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_forged_delivery_cursor_out_of_range_is_a_400(
    api_client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    unreachable = {"sink": "http://127.0.0.1:9/h", "validate": False}
    created = await api_client.post("/api/v1/subscriptions", json=unreachable, headers=auth)
    sub = created.json()["id"]
    forged = cursor(10**20, "00000000-0000-0000-0000-000000000000")
    response = await api_client.get(f"/api/v1/subscriptions/{sub}/deliveries?cursor={forged}", headers=auth)
    assert response.status_code == 400


async def test_a_value_postgresql_cannot_store_is_a_400_not_a_500(
    api_client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = {"sink": "http://127.0.0.1:9/h", "source": "urn:nld:a\u0000b", "validate": False}
    response = await api_client.post("/api/v1/subscriptions", json=body, headers=auth)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["title"] == "Request refused"  # refused by the store, not the sink check
