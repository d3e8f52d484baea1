"""Delivery retry schedule."""

from __future__ import annotations

import random

import pytest

from subscriptions.retry import DEFAULT_RETRY_SCHEDULE, RetrySchedule


def test_parse_reads_comma_separated_seconds() -> None:
    schedule = RetrySchedule.parse("5, 30,120 ,0.5")
    assert schedule.delays == (5.0, 30.0, 120.0, 0.5)
    assert schedule.retries == 4
    assert schedule.max_attempts == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("5,,30", "empty entry at #2"),
        ("5,", "empty entry at #2"),
        ("5,-1", "#2 must be a finite number >= 0"),
        ("5,abc", "#2 is not a number of seconds: 'abc'"),
        ("5m", "#1 is not a number"),
        ("nan", "finite"),
        ("inf", "finite"),
    ],
)
def test_parse_rejects_bad_schedules(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetrySchedule.parse(text)


def test_constructor_validates_too() -> None:
    with pytest.raises(ValueError, match="at least one delay"):
        RetrySchedule(())
    with pytest.raises(ValueError, match=">= 0"):
        RetrySchedule.of([5, -3])
    with pytest.raises(ValueError, match="jitter"):
        RetrySchedule((5.0,), jitter=1.5)
    assert RetrySchedule.of([5, 30]).delays == (5.0, 30.0)


def test_next_delay_walks_the_schedule_then_gives_up() -> None:
    schedule = RetrySchedule.parse("5,30,120")
    assert [schedule.next_delay(n) for n in (1, 2, 3, 4, 5)] == [5.0, 30.0, 120.0, None, None]


def test_next_delay_counts_attempts_from_one() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        RetrySchedule.parse("5").next_delay(0)


def test_default_schedule_spans_about_two_days_with_twenty_percent_jitter() -> None:
    assert DEFAULT_RETRY_SCHEDULE.delays == (
        5.0,
        30.0,
        120.0,
        600.0,
        1800.0,
        3600.0,
        10800.0,
        21600.0,
        43200.0,
        86400.0,
    )
    assert 44 * 3600 <= DEFAULT_RETRY_SCHEDULE.total_seconds <= 50 * 3600
    assert DEFAULT_RETRY_SCHEDULE.max_attempts == 11
    assert DEFAULT_RETRY_SCHEDULE.jitter == 0.2
    assert DEFAULT_RETRY_SCHEDULE.next_delay(11) is None


def test_without_jitter_the_schedule_is_deterministic() -> None:
    schedule = RetrySchedule.parse("5,30")
    assert {schedule.next_delay(1) for _ in range(50)} == {5.0}


def test_jitter_stays_within_bounds_and_is_reproducible_with_a_seed() -> None:
    schedule = RetrySchedule.parse("100,1000", jitter=0.2, rng=random.Random(42))
    delays = [schedule.next_delay(1) for _ in range(500)]
    assert all(d is not None and 80.0 <= d <= 120.0 for d in delays)
    assert len(set(delays)) > 100  # it actually spreads
    again = RetrySchedule.parse("100,1000", jitter=0.2, rng=random.Random(42))
    assert [again.next_delay(1) for _ in range(500)] == delays
    assert schedule.next_delay(3) is None


def test_retry_after_raises_the_delay_but_is_capped_and_adds_no_attempts() -> None:
    schedule = RetrySchedule.parse("5,30,120")
    assert schedule.next_delay(1, retry_after_s=60) == 60.0
    assert schedule.next_delay(2, retry_after_s=1) == 30.0
    assert schedule.next_delay(1, retry_after_s=10**9) == 120.0  # capped at the longest
    assert schedule.next_delay(4, retry_after_s=60) is None


def test_a_floor_raises_short_delays_only() -> None:
    schedule = RetrySchedule.of([5, 30, 120])
    assert schedule.next_delay(1, floor_s=60) == 60.0
    assert schedule.next_delay(3, floor_s=60) == 120.0
    assert schedule.next_delay(4, floor_s=60) is None  # a floor never adds attempts


def test_retry_after_is_honoured_up_to_an_explicit_bound() -> None:
    schedule = RetrySchedule.of([5, 30])
    assert schedule.next_delay(1, retry_after_s=3600, retry_after_max_s=7200) == 3600.0
    assert schedule.next_delay(1, retry_after_s=10**9, retry_after_max_s=7200) == 7200.0
    assert schedule.next_delay(1, retry_after_s=float("inf"), retry_after_max_s=7200) == 5.0


def test_with_delays_keeps_the_jitter_and_the_generator() -> None:
    base = RetrySchedule.of([1], jitter=0.2, rng=random.Random(7))
    own = base.with_delays([10, 20])
    assert own.delays == (10.0, 20.0) and own.jitter == 0.2 and own.rng is base.rng
