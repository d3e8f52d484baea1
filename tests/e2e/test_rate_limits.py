"""A publisher past KOPPELHUB_PUBLISH_RATE_LIMIT gets 429 with Retry-After, over real HTTP."""

from __future__ import annotations

import pytest

from hub.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.e2e.test_write_ahead import running
from tests.support.hub_api import event

pytestmark = pytest.mark.e2e


async def test_publishing_past_the_rate_limit_answers_429_with_retry_after(settings: Settings) -> None:
    limited = settings.model_copy(update={"publish_rate_limit": "2/minute"})
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/cloudevents+json"}
    async with running(limited, ("api",)) as client:
        for _ in range(2):
            assert (await client.post("/api/v1/events", json=event(), headers=headers)).status_code == 202
        refused = await client.post("/api/v1/events", json=event(), headers=headers)
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
