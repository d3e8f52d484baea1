"""Flow control with a fake clock: token buckets, concurrency room, wake-up hints."""

from __future__ import annotations

import uuid

import pytest

from subscriptions.flow import FlowControl, TokenBucket, claim_room


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_burst_of_its_rate_then_refills_at_that_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, clock)
    assert bucket.available() == 5
    bucket.take(5)
    assert bucket.available() == 0
    assert bucket.seconds_until(1) == pytest.approx(0.2)
    clock.now += 0.4
    assert bucket.available() == 2
    clock.now += 100
    assert bucket.available() == 5  # never more than one second's worth


def test_a_slow_rate_still_allows_one_at_a_time() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0.5, clock)
    assert bucket.available() == 1
    bucket.take()
    clock.now += 1.0
    assert bucket.available() == 0
    clock.now += 1.0
    assert bucket.available() == 1


def test_room_is_twice_the_cap_less_what_busy_subscriptions_hold_claimed() -> None:
    flow = FlowControl(default_concurrency=16, clock=FakeClock(), ahead=True)
    a, b = uuid.uuid4(), uuid.uuid4()
    flow.claimed(a, 3, cap=4, rate=None, offered=None)
    flow.claimed(b, 10, cap=None, rate=None, offered=None)
    assert claim_room(4) == 8
    assert flow.room() == {a: 5, b: 22}
    for _ in range(3):
        flow.finished(a)
    assert flow.room() == {b: 22}  # idle again: the claim applies its own cap
    assert flow.room_for([a])  # an idle subscription has room


def test_a_busy_subscription_gets_room_again_only_in_half_a_cap() -> None:
    flow = FlowControl(default_concurrency=16, clock=FakeClock(), ahead=True)
    sid = uuid.uuid4()
    flow.claimed(sid, 25, cap=None, rate=None, offered=None)  # 16 sending, 9 waiting for a place
    assert flow.room() == {sid: 0}  # 7 free: not yet
    assert not flow.room_for([sid])
    flow.finished(sid)
    assert flow.room() == {sid: 8}
    assert flow.room_for([sid])


def test_without_claiming_ahead_room_is_the_free_concurrency() -> None:
    flow = FlowControl(default_concurrency=16, clock=FakeClock())
    a, b = uuid.uuid4(), uuid.uuid4()
    flow.claimed(a, 3, cap=4, rate=None, offered=None)
    flow.claimed(b, 15, cap=None, rate=None, offered=None)
    assert flow.room() == {a: 1, b: 1}


def test_a_rate_limited_subscription_is_not_claimed_ahead() -> None:
    clock = FakeClock()
    flow = FlowControl(default_concurrency=16, clock=clock, ahead=True)
    sid = uuid.uuid4()
    flow.claimed(sid, 4, cap=4, rate=100.0, offered=None)
    assert flow.room() == {sid: 0}  # its cap is taken; tokens alone do not make room
    clock.now += 1.0
    assert flow.room() == {sid: 0}
    flow.finished(sid)
    assert flow.room() == {sid: 1}


def test_a_rate_limited_subscription_held_back_by_its_cap_is_not_throttled() -> None:
    flow = FlowControl(default_concurrency=16, clock=FakeClock())
    sid = uuid.uuid4()
    flow.claimed(sid, 4, cap=4, rate=100.0, offered=4)  # tokens left, every place taken
    assert flow.room() == {sid: 0}
    assert flow.wake_in() is None  # an ended attempt wakes the dispatcher, not a token


def test_room_of_a_rate_limited_subscription_follows_its_tokens_and_wakes_the_dispatcher() -> None:
    clock = FakeClock()
    flow = FlowControl(default_concurrency=16, clock=clock)
    sid = uuid.uuid4()
    flow.claimed(sid, 2, cap=None, rate=2.0, offered=2)
    assert flow.room() == {sid: 0}
    assert flow.wake_in() == pytest.approx(0.5)
    clock.now += 0.5
    assert flow.room() == {sid: 1}
    flow.finished(sid)
    flow.finished(sid)
    clock.now += 10
    assert flow.room() == {}  # full bucket, nothing in flight: forgotten


def test_a_rate_change_takes_effect_at_the_next_claim() -> None:
    clock = FakeClock()
    flow = FlowControl(default_concurrency=16, clock=clock, ahead=True)
    sid = uuid.uuid4()
    flow.claimed(sid, 1, cap=None, rate=10.0, offered=None)
    flow.claimed(sid, 1, cap=None, rate=1.0, offered=None)
    assert flow.room() == {sid: 0}
    flow.claimed(sid, 0, cap=None, rate=None, offered=None)
    assert flow.room() == {sid: 30}


def test_a_bucket_refuses_a_rate_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0, FakeClock())
