"""The delivery state machine (subscriptions.lifecycle): its transitions, one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.hub_events import DELIVERY_DEAD
from subscriptions import lifecycle as lc

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=30)


def test_a_delivered_attempt_finishes_the_delivery() -> None:
    assert lc.after_attempt("delivered", None, NOW) == lc.Step(lc.DELIVERED, None)


def test_a_failure_with_schedule_left_waits_the_delay() -> None:
    assert lc.after_attempt("retry", 30.0, NOW) == lc.Step(lc.FAILED, LATER)


def test_a_failure_with_the_schedule_used_up_is_dead() -> None:
    assert lc.after_attempt("retry", None, NOW).status == lc.DEAD


def test_a_permanent_refusal_is_dead_at_once_whatever_the_schedule_has_left() -> None:
    assert lc.after_attempt("permanent", 30.0, NOW) == lc.Step(lc.DEAD, None)


def test_a_410_keeps_the_delivery_open_and_due_and_disables_the_subscription() -> None:
    step = lc.after_attempt("gone", None, NOW)
    assert step == lc.Step(lc.FAILED, NOW, lc.GONE_REASON) and step.status in lc.OPEN


def test_only_the_claim_that_made_an_attempt_may_record_it() -> None:
    assert lc.may_record(lc.PENDING, 0, 1) and lc.may_record(lc.FAILED, 2, 3)
    assert not lc.may_record(lc.FAILED, 3, 3)  # someone else recorded attempt 3 meanwhile
    assert not lc.may_record(lc.DELIVERED, 0, 1) and not lc.may_record(lc.DEAD, 0, 1)


def test_an_open_earlier_delivery_of_the_same_key_blocks_unless_ordering_is_none() -> None:
    assert lc.blocked_by(lc.FAILED, True, "key")
    assert not lc.blocked_by(lc.FAILED, True, "none")
    assert not lc.blocked_by(lc.FAILED, False, "key")
    assert not lc.blocked_by(lc.DEAD, True, "key")


def test_hold_back_moves_open_followers_to_the_heads_next_try_and_retry_releases_them() -> None:
    assert lc.held_until(lc.PENDING, NOW, LATER) == LATER
    assert lc.held_until(lc.PENDING, LATER + timedelta(seconds=1), LATER) > LATER  # already later
    assert lc.held_until(lc.DELIVERED, NOW, LATER) == NOW
    assert lc.released(lc.PENDING, LATER, NOW) == NOW
    assert lc.released(lc.DEAD, LATER, NOW) == LATER


def test_a_subscription_failing_longer_than_the_limit_is_disabled() -> None:
    assert lc.failed_too_long(NOW - timedelta(seconds=61), NOW, 60)
    assert not lc.failed_too_long(NOW - timedelta(seconds=59), NOW, 60)
    assert not lc.failed_too_long(None, NOW, 60)


def test_no_alert_is_raised_about_hub_events_alone() -> None:
    assert lc.alerts_dead("nl.softwarecatalogus.gebruik.vastgelegd.v1")
    assert not lc.alerts_dead(DELIVERY_DEAD)
    assert not lc.alerts_disabled([DELIVERY_DEAD])
    assert lc.alerts_disabled([DELIVERY_DEAD, "nl.softwarecatalogus.gebruik.vastgelegd.v1"])
    assert lc.alerts_disabled([DELIVERY_DEAD], delivered_some=True)


def test_the_webhook_id_is_the_name_based_uuid5_of_subscription_and_event() -> None:
    # The id must stay what receivers already deduplicate on (uuid5), whatever computes it.
    import uuid

    from subscriptions.lifecycle import message_id

    for event_id in ("e1", "évènement-ü", str(uuid.uuid4()), "x" * 300, ""):
        sid = uuid.uuid4()
        assert message_id(sid, event_id) == str(uuid.uuid5(sid, event_id))
