"""Flow control: Retry-After, ordering under failure, ordering=none, rate and concurrency caps,
and a slow sink that never delays another subscription."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.e2e.test_delivery_outcomes import publish, wait_for_status
from tests.support.hub_api import event, eventually, subscribe
from tests.support.sink import Received, WebhookSink

pytestmark = pytest.mark.e2e


class Clocked:
    """A responder that notes when each request arrived and answers from a script."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.times: list[float] = []

    def __call__(self, n: int, got: Received) -> Any:
        self.times.append(time.monotonic())
        return self.answer(n, got)


async def test_a_429_with_retry_after_is_retried_no_sooner_than_asked(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    script = Clocked(lambda n, r: (429, {"Retry-After": "2"}) if n == 1 else 204)
    sink = await WebhookSink(responder=script).start()
    try:
        sub = await subscribe(client, auth, sink.url, retrySchedule=[0.1, 0.1])
        await publish(client, auth, event())
        await sink.wait_for(1)
        waited = script.times[1] - script.times[0]
        assert 1.9 <= waited < 10, waited  # the schedule alone would have waited 0.1 s
        [done] = await wait_for_status(client, auth, sub["id"], "delivered")
        assert done["attempts"] == 2
    finally:
        await sink.stop()


def arrivals_per_key(sink: WebhookSink) -> dict[str, list[int]]:
    per_key: dict[str, list[int]] = {}
    for got in sink.delivered:
        body = got.json()
        per_key.setdefault(body["subject"], []).append(body["data"]["n"])
    return per_key


async def test_with_ordering_key_a_failing_event_holds_back_its_own_key_only(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    # The first event of key-1 fails twice; key-2 flows meanwhile, key-1 waits for it.
    failures = {"left": 2}

    def answer(n: int, got: Received) -> int:
        body = got.json()
        if body["subject"] == "key-1" and body["data"]["n"] == 0 and failures["left"]:
            failures["left"] -= 1
            return 503
        return 204

    sink = await WebhookSink(responder=answer).start()
    try:
        await subscribe(client, auth, sink.url, retrySchedule=[1.0, 1.0, 1.0])
        # Keys live on different partitions, projected by different consumers: let the group
        # settle first, so key-2 is not merely projected late while key-1 retries.
        await publish(client, auth, event("warm-up", -1))
        await sink.wait_for(1)
        sink.delivered.clear()
        sent = [event("key-1", n) for n in range(4)] + [event("key-2", n) for n in range(4, 8)]
        await publish(client, auth, *sent)
        await sink.wait_for(len(sent))
        assert arrivals_per_key(sink) == {"key-1": [0, 1, 2, 3], "key-2": [4, 5, 6, 7]}
        first_key1 = next(i for i, r in enumerate(sink.delivered) if r.json()["subject"] == "key-1")
        assert first_key1 >= 4, "key-2 was held back by key-1's failure"
    finally:
        await sink.stop()


async def test_with_ordering_none_a_failing_event_does_not_hold_back_later_ones(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    first_fails = lambda n, r: 503 if r.json()["data"]["n"] == 0 and n == 1 else 204  # noqa: E731
    sink = await WebhookSink(responder=first_fails).start()
    try:
        sub = await subscribe(client, auth, sink.url, ordering="none", retrySchedule=[1.0])
        assert sub["ordering"] == "none"
        first = event("key-1", 0)
        await publish(client, auth, first)
        await sink.wait_for(1, delivered=False)
        later = [event("key-1", n) for n in (1, 2)]
        await publish(client, auth, *later)
        await sink.wait_for(3)
        ids = [r.json()["id"] for r in sink.delivered]
        assert ids[:2] == [e["id"] for e in later] or set(ids[:2]) == {e["id"] for e in later}
        assert ids[2] == first["id"], "the retried event should arrive after the later ones"
    finally:
        await sink.stop()


async def test_max_rate_spreads_deliveries_over_time(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    script = Clocked(lambda n, r: 204)
    sink = await WebhookSink(responder=script).start()
    try:
        await subscribe(client, auth, sink.url, maxRate=5, ordering="none")
        await publish(client, auth, *(event(f"key-{n}", n) for n in range(12)))
        await sink.wait_for(12, timeout=30)
        span = script.times[-1] - script.times[0]
        # A burst of 5, then 5 per second: the last 7 need at least 1.4 s.
        assert span >= 1.2, span
    finally:
        await sink.stop()


async def test_a_slow_sink_does_not_delay_another_subscription_and_keeps_to_its_concurrency(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    in_flight = {"now": 0, "max": 0}
    slow = WebhookSink(delay=2.0)
    original = slow._handle

    async def counting(request: Any) -> Any:
        if request.method != "POST":
            return await original(request)
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])
        try:
            return await original(request)
        finally:
            in_flight["now"] -= 1

    slow._handle = counting  # type: ignore[method-assign]  # before start(): the route binds it
    await slow.start()
    fast = await WebhookSink().start()
    try:
        await subscribe(client, auth, slow.url, maxConcurrency=4, ordering="none")
        await subscribe(client, auth, fast.url)
        sent = [event(f"key-{n}", n) for n in range(40)]
        started = time.monotonic()
        await publish(client, auth, *sent)
        await fast.wait_for(len(sent), timeout=15)
        fast_done = time.monotonic() - started
        # The slow sink needs 20 s for its share (40 events, 4 at a time, 2 s each); half of that
        # leaves room for a loaded CI machine (4.03 s seen once) and still tells the two apart.
        assert fast_done < 10.0, fast_done
        assert len(slow.received) < len(sent)

        async def cap_used() -> bool:
            return bool(in_flight["max"] >= 4)

        await eventually(cap_used, what="four attempts in flight")
        assert in_flight["max"] == 4, in_flight  # the cap is used, never exceeded
    finally:
        await slow.stop()
        await fast.stop()
