"""Per-principal publish rate limits: one runaway system cannot starve the others.

``KOPPELHUB_PUBLISH_RATE_LIMIT`` (``limits`` notation, e.g. ``1000/second`` or
``50000 per minute``) caps the events each principal may publish in a moving window; every
event of a batch counts. Past the cap a publish answers 429 with ``Retry-After`` (whole
seconds until the window has room again). A batch larger than the whole window can never
pass: 413, split it. The windows are kept in this process's memory (an API process each).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from hub.api.problems import ProblemError

__all__ = ["PublishRateLimiter", "parse_rate"]


def parse_rate(text: str) -> RateLimitItem:
    """``text`` as a rate (ValueError when it is not one)."""
    return parse(text)


class PublishRateLimiter:
    """Events per principal per moving window, or no limit when ``rate`` is None."""

    def __init__(self, rate: str | None):
        self._item = parse_rate(rate) if rate else None
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def check_room(self, principal: str) -> None:
        """Refuse (429) before the body is read when the window has no room for one event."""
        if self._item is not None and not await self._limiter.test(self._item, principal):
            raise await self._refusal(principal)

    async def admit(self, principal: str, events: int) -> None:
        """Count ``events`` for ``principal``; 429 (or 413 for a batch beyond the window)."""
        item = self._item
        if item is None:
            return
        if events > item.amount:
            raise ProblemError(
                413,
                "Batch larger than the rate limit",
                f"{events} events exceed the publish rate limit of {item} per principal "
                "(KOPPELHUB_PUBLISH_RATE_LIMIT); split the batch",
            )
        if not await self._limiter.hit(item, principal, cost=events):
            raise await self._refusal(principal)

    async def _refusal(self, principal: str) -> ProblemError:
        assert self._item is not None
        stats = await self._limiter.get_window_stats(self._item, principal)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        return ProblemError(
            429,
            "Too many events",
            f"this principal may publish {self._item} (KOPPELHUB_PUBLISH_RATE_LIMIT); retry after {wait} s",
            headers={"Retry-After": str(wait)},
        )
