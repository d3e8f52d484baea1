"""An outage of a store answers 503 with ``Retry-After`` (README "Outages"): the hub rides it
out by itself, so the client is told to come back soon rather than to give up."""

from __future__ import annotations

import json

from starlette.requests import Request

from hub.api.problems import OUTAGE_RETRY_AFTER_SECONDS, on_hub_error
from hub.errors import BrokerUnavailable, NotFound


def _request() -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": []})


async def test_a_store_outage_answers_503_problem_json_with_retry_after() -> None:
    response = await on_hub_error(_request(), BrokerUnavailable("gone"))
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == str(OUTAGE_RETRY_AFTER_SECONDS)
    assert json.loads(response.body)["title"] == "Service unavailable"


async def test_an_answer_that_is_not_an_outage_carries_no_retry_after() -> None:
    response = await on_hub_error(_request(), NotFound("no such thing"))
    assert response.status_code == 404
    assert "retry-after" not in response.headers
