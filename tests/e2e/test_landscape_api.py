"""The landscape read API on a running hub: paging through what the projector wrote.

Errors, private fields and documentation are unit tests on the in-memory app
(tests/unit/api/test_landscape_api.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.hub_api import eventually, landscape_event, publish

pytestmark = pytest.mark.e2e


async def _applicaties(client: httpx.AsyncClient, auth: dict[str, str], n: int) -> None:
    apps = [{"id": f"app-{i:02}", "naam": f"App {i}", "aanbieder": f"org-{i % 2}"} for i in range(n)]
    events = [landscape_event("applicatie", "vastgelegd", app) for app in apps]
    assert (await publish(client, auth, *events)).status_code == 202

    async def all_there() -> bool:
        body = (await client.get("/api/v1/applicaties", params={"limit": 500}, headers=auth)).json()
        return len(body["items"]) == n

    await eventually(all_there, what=f"{n} applicaties projected")


async def test_next_links_walk_a_filtered_collection_page_by_page(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await _applicaties(client, auth, 7)

    seen: list[str] = []
    url: str | None = "/api/v1/applicaties?aanbieder=org-1&limit=2"
    while url:
        response = await client.get(url, headers=auth)
        assert response.status_code == 200
        seen += [item["id"] for item in response.json()["items"]]
        url = response.json()["next"]
        assert url is None or "aanbieder=org-1" in url
    assert seen == ["app-01", "app-03", "app-05"]
