"""Per-principal publish rate limits (hub/api/rate_limits.py) and their setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.api.problems import ProblemError
from hub.api.rate_limits import PublishRateLimiter
from hub.settings import Settings


async def test_a_principal_past_its_rate_gets_429_with_retry_after_and_others_are_not_held() -> None:
    limiter = PublishRateLimiter("3/minute")
    await limiter.admit("zaaksysteem", 2)
    with pytest.raises(ProblemError) as refused:
        await limiter.admit("zaaksysteem", 2)  # every event of a batch counts
    assert refused.value.status == 429
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    assert "KOPPELHUB_PUBLISH_RATE_LIMIT" in str(refused.value.detail)
    await limiter.admit("crm", 3)  # its own window
    await limiter.admit("zaaksysteem", 1)
    with pytest.raises(ProblemError) as full:
        await limiter.check_room("zaaksysteem")  # refused before its body is read
    assert full.value.status == 429


async def test_a_batch_larger_than_the_whole_window_is_413_split_it() -> None:
    with pytest.raises(ProblemError) as refused:
        await PublishRateLimiter("10/second").admit("a", 11)
    assert refused.value.status == 413 and "split" in str(refused.value.detail)


async def test_without_a_rate_nothing_is_limited() -> None:
    limiter = PublishRateLimiter(None)
    await limiter.check_room("a")
    await limiter.admit("a", 1_000_000)


def test_a_rate_that_is_not_one_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="is not a rate"):
        Settings(publish_rate_limit="lots")
    assert Settings(publish_rate_limit="1000 per second").publish_rate_limit == "1000 per second"
