"""The Signalen fake answers like Signalen: HAL pages, filters, bearer token, the workflow."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.signalen_fake import PATH, SignalenFake


@pytest.fixture
async def fake() -> AsyncIterator[SignalenFake]:
    f = await SignalenFake().start()
    yield f
    await f.stop()


def _client(fake: SignalenFake, token: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=fake.url, headers={"Authorization": f"Bearer {token or fake.token}"}, timeout=5
    )


async def test_pages_are_followed_by_next_href_to_the_end(fake: SignalenFake) -> None:
    fake.add(7)
    seen: list[int] = []
    async with _client(fake) as c:
        url: str | None = f"{PATH}?ordering=updated_at&page_size=3"
        while url:
            body = (await c.get(url)).json()
            assert body["count"] == 7
            seen += [r["id"] for r in body["results"]]
            url = body["_links"]["next"]["href"]
    assert seen == list(range(1, 8))


async def test_updated_after_and_repeated_filters_select(fake: SignalenFake) -> None:
    fake.add(3, department="ASC")
    fake.add(2, department="STW", main="wegen")
    async with _client(fake) as c:
        first = (await c.get(PATH, params={"ordering": "updated_at"})).json()["results"]
        after = first[2]["updated_at"]
        got = (await c.get(PATH, params=[("updated_after", after), ("ordering", "updated_at")])).json()
        assert [r["id"] for r in got["results"]] == [3, 4, 5]  # updated_at >= after
        both = (await c.get(PATH, params=[("routing_department_code", "STW"), ("status", "m")])).json()
        assert both["count"] == 2


async def test_wrong_token_is_401_and_down_is_503(fake: SignalenFake) -> None:
    async with _client(fake, "nope") as c:
        assert (await c.get(PATH)).status_code == 401
    fake.down, fake.retry_after = True, 2
    async with _client(fake) as c:
        r = await c.get(PATH)
        assert r.status_code == 503 and r.headers["Retry-After"] == "2"


async def test_a_forbidden_transition_is_refused_like_signalen(fake: SignalenFake) -> None:
    (melding,) = fake.add(1)
    async with _client(fake) as c:
        refused = await c.patch(f"{PATH}{melding}", json={"status": {"state": "closure requested"}})
        assert refused.status_code == 400
        assert refused.json()["state"][0].startswith("Invalid state transition from `Gemeld`")
        ok = await c.patch(f"{PATH}{melding}", json={"status": {"state": "i", "send_email": False}})
        assert ok.status_code == 200 and ok.json()["status"]["state"] == "i"
    assert [(p.state, p.status) for p in fake.patches] == [("closure requested", 400), ("i", 200)]
