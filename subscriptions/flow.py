"""Flow control per subscription: a concurrency cap and a token-bucket rate limit (pure).

The dispatcher asks :meth:`FlowControl.room` before each claim, so it only takes from the
outbox what it may send now or, claiming ahead (:func:`claim_room`), right after what it is
sending; one subscription's cap never uses another's share.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["FlowControl", "TokenBucket", "claim_room"]


def claim_room(cap: int) -> int:
    """How many deliveries of a subscription without a rate limit a dispatcher that claims
    ahead may hold claimed at once: twice its cap. At most ``cap`` of them are sent at a time
    (:class:`hub.services.send_gate.SendGate`); the others wait in memory for a place, so one
    ends and the next starts without waiting for the next claim.

    With only the cap claimed, a freed place waited for the dispatcher's next claim to round
    trip: one fast sink got its 16 places back about every 10 ms (benchmarks.e2e: 1,300-1,500
    deliveries/s at 0.8 of a core, 7.6 rows a claim). While the cap stays, a claimed delivery
    waits at most one attempt (``KOPPELHUB_DELIVERY_TIMEOUT_SECONDS``) for its place, so the
    dispatcher claims ahead only when a lease outlasts two attempts (hub/bootstrap/process.py)."""
    return 2 * cap


class TokenBucket:
    """``rate`` tokens per second, bursts of up to ``max(1, rate)``."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be a positive number, got {rate!r}")
        self.rate = rate
        self._clock = clock
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def available(self) -> int:
        self._refill()
        return int(self._tokens + 1e-9)  # 0.4 s at 5/s is 1.999... in floating point

    def take(self, n: int = 1) -> None:
        self._refill()
        self._tokens -= n

    @property
    def full(self) -> bool:
        self._refill()
        return self._tokens >= self.capacity

    def seconds_until(self, tokens: float = 1.0) -> float:
        self._refill()
        return max(0.0, (tokens - self._tokens) / self.rate)

    def set_rate(self, rate: float) -> None:
        self._refill()
        self.rate, self.capacity = rate, max(1.0, rate)
        self._tokens = min(self._tokens, self.capacity)


@dataclass
class _Flow:
    cap: int
    in_flight: int = 0  # claimed and not ended: sending, or waiting for a place to send
    bucket: TokenBucket | None = None
    throttled: bool = False


@dataclass
class FlowControl:
    """Claimed counts and rate buckets of the subscriptions this dispatcher is sending for;
    ``ahead``: claim up to :func:`claim_room` of a subscription without a rate limit, else up
    to its cap."""

    default_concurrency: int
    clock: Callable[[], float] = time.monotonic
    ahead: bool = False
    _flows: dict[uuid.UUID, _Flow] = field(default_factory=dict)

    @staticmethod
    def own_limits(cap: int | None, rate: float | None) -> bool:
        """Whether a subscription limits its sink itself (``maxConcurrency``, ``maxRate`` or the
        sink's ``WebHook-Allowed-Rate``): a spare dispatcher leaves it to the others, so that
        its limits are kept by one dispatcher as set (claims.py ``sized``, ``:spare``)."""
        return cap is not None or rate is not None

    def idle_room(self, cap: int | None, rate: float | None) -> int:
        """What a claim gives a subscription that :meth:`room` did not list (idle here): its
        cap, and no more than its rate's burst. The outbox applies it (claims.py ``sized``)."""
        cap = cap or self.default_concurrency
        return cap if rate is None else min(cap, max(1, math.floor(rate)))

    def room(self) -> dict[uuid.UUID, int]:
        """How many more deliveries each busy or rate-limited subscription may claim now:
        claiming ahead, what is left of :func:`claim_room` once half its cap is free (so a
        claim takes at least that many, while the other claimed ones are sent), else its free
        concurrency; never more than a rate-limited one's tokens (which are taken as it is
        claimed, so it is not claimed ahead).

        Subscriptions not listed are idle here: the claim applies their own cap."""
        out: dict[uuid.UUID, int] = {}
        for sid, flow in list(self._flows.items()):
            if flow.in_flight == 0 and (flow.bucket is None or flow.bucket.full):
                del self._flows[sid]  # idle again: nothing to remember
                continue
            if self.ahead and flow.bucket is None:
                free = claim_room(flow.cap) - flow.in_flight
                if free < max(1, flow.cap // 2):
                    free = 0
            else:
                free = flow.cap - flow.in_flight
            if flow.bucket is not None:
                free = min(free, flow.bucket.available())
            out[sid] = max(0, free)
        return out

    def room_for(self, subscriptions: Iterable[uuid.UUID]) -> bool:
        """Whether any of these subscriptions may claim a delivery now (an idle one may)."""
        room = self.room()
        return any(room.get(sid, 1) > 0 for sid in subscriptions)

    def claimed(
        self,
        subscription_id: uuid.UUID,
        count: int,
        *,
        cap: int | None,
        rate: float | None,
        offered: int | None,
    ) -> None:
        """``count`` deliveries of this subscription were claimed (``offered`` = the room given)."""
        flow = self._flows.get(subscription_id)
        if flow is None:
            flow = self._flows[subscription_id] = _Flow(cap or self.default_concurrency)
        flow.cap = cap or self.default_concurrency
        if rate is None:
            flow.bucket = None
        elif flow.bucket is None:
            flow.bucket = TokenBucket(rate, self.clock)
        elif flow.bucket.rate != rate:
            flow.bucket.set_rate(rate)
        flow.in_flight += count
        if flow.bucket is not None:
            flow.bucket.take(count)
            # Probably more waiting, and the tokens hold it back: come back when the next one is
            # there. Held back by its cap instead, an ended attempt wakes the dispatcher; marked
            # throttled, it made the dispatcher claim every 5 ms (wake_in 0) while its sink was slow.
            flow.throttled = (offered is None or count >= offered) and flow.bucket.available() < 1
        else:
            flow.throttled = False

    def finished(self, subscription_id: uuid.UUID) -> None:
        flow = self._flows.get(subscription_id)
        if flow is not None and flow.in_flight > 0:
            flow.in_flight -= 1

    def in_flight(self, subscription_id: uuid.UUID) -> int:
        flow = self._flows.get(subscription_id)
        return 0 if flow is None else flow.in_flight

    def wake_in(self) -> float | None:
        """Seconds until a throttled subscription has a token again, if any is throttled."""
        waits = [
            f.bucket.seconds_until(1.0) for f in self._flows.values() if f.throttled and f.bucket is not None
        ]
        return min(waits) if waits else None
