"""The delivery state machine: the one place that says how a delivery changes state.

A delivery is one event queued for one subscription. Its states and what moves it::

                         claim (lease: next_attempt_at = now + lease; status unchanged)
        queued ─────► PENDING ──────────────────────────────┐
    (projector,         ▲  ▲                                 ▼
     alerts, replay)    │  │ due again              ┌── attempt ──┐
                        │  │ (next_attempt_at)      │             │ 2xx
           manual retry │  └────────── FAILED ◄─────┤             └──────────► DELIVERED
           (any state)  │                ▲          │ other answer, schedule left
                        │                │          │ 410 Gone: due now, but the
                        │                │          │   subscription is DISABLED
                        └──── DEAD ◄─────┼──────────┘ schedule used up
                                         │
                     hold-back: a failed head keeps the later open deliveries of its
                     ordering key out of the due range until its own next try

Open deliveries (:data:`OPEN`: pending or failed) are claimed only while their subscription
is :data:`ACTIVE`; a subscription's own life cycle::

        ACTIVE ──pause (API)──► PAUSED          ACTIVE ──410 Gone / failing too long──► DISABLED
        PAUSED | DISABLED ──resume (API)──► ACTIVE: every open delivery due now, failure clock reset

Rules the adapters execute (PostgreSQL in set-based SQL built from these constants, the
in-memory twin by calling these functions; one contract suite keeps them equal):

- an outcome is recorded only for the claim that made it (:func:`may_record`), so a
  dispatcher whose lease ran out cannot overwrite what another recorded since;
- per-key order: an open delivery is due only when no earlier open delivery of the same
  subscription and ordering key exists (:func:`blocked_by`), unless the subscription orders
  ``none``;
- one message per event and subscription: every delivery of one event to one subscription
  (first send, retries, manual retries, replays, recoveries) carries the same ``webhook-id``
  (:func:`message_id`), so a receiver dedupes whatever way it was sent again;
- made good: when a delivery is delivered, the dead deliveries of the same event to the same
  subscription become delivered too (:data:`MADE_GOOD`): a replay or a retry that delivered
  the event leaves nothing ``dead`` that was not lost;
- replay ``onlyUndelivered`` queues an event only when no delivery of it to the subscription
  was delivered or is still open (:func:`needs_replay`); recovery makes every failed and dead
  delivery since a moment due now with a fresh schedule (:data:`RECOVERABLE`);
- alerts: a delivery going dead raises ``delivery.dead`` unless the event is itself one of
  the hub's own; a disabled subscription raises ``subscription.disabled`` unless only hub
  events were failing (:func:`alerts_dead`, :func:`alerts_disabled`): no alert loops.

Pure: imports only the standard library and ``schemas``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from schemas.hub_events import is_hub_event
from schemas.uuids import uuid5_text

__all__ = [
    "ACTIVE",
    "DEAD",
    "DELIVERED",
    "DISABLED",
    "FAILED",
    "GONE_REASON",
    "MADE_GOOD",
    "OPEN",
    "PAUSED",
    "PAUSE_REASON",
    "PENDING",
    "RECOVERABLE",
    "REPLAY_SKIPS",
    "RETRY_STATUS",
    "STATES",
    "Step",
    "after_attempt",
    "alerts_dead",
    "alerts_disabled",
    "blocked_by",
    "failed_too_long",
    "failing_reason",
    "held_until",
    "is_due",
    "may_record",
    "message_id",
    "needs_replay",
    "released",
]

# Delivery states.
PENDING: Final = "pending"
DELIVERED: Final = "delivered"
FAILED: Final = "failed"
DEAD: Final = "dead"
STATES: Final = (PENDING, DELIVERED, FAILED, DEAD)
#: Still to be delivered: claimable when due, and blocking later deliveries of the same key.
OPEN: Final = (PENDING, FAILED)
#: What a manual retry makes of a delivery, whatever state it was in.
RETRY_STATUS: Final = PENDING
#: What ``recover`` makes due again: the deliveries whose last attempt failed.
RECOVERABLE: Final = (FAILED, DEAD)
#: The states a delivered sibling (same event, same subscription) turns into delivered.
MADE_GOOD: Final = (DEAD,)
#: A replay with ``onlyUndelivered`` leaves out an event with a delivery in one of these.
REPLAY_SKIPS: Final = (DELIVERED, *OPEN)

# Subscription states.
ACTIVE: Final = "active"
PAUSED: Final = "paused"
DISABLED: Final = "disabled"
PAUSE_REASON: Final = "paused through the API"
GONE_REASON: Final = "the sink answered 410 Gone"


@dataclass(frozen=True)
class Step:
    """What an attempt makes of its delivery."""

    status: str
    next_attempt_at: datetime | None
    disable_reason: str | None = None  # the subscription is to be disabled (410)


def after_attempt(disposition: str, retry_in: float | None, now: datetime) -> Step:
    """The transition after one attempt.

    ``disposition`` is the sender's verdict (``delivered``, ``gone``, ``permanent`` or anything
    else: a failure); ``retry_in`` the retry schedule's next delay in seconds, ``None`` when
    used up. A 410 keeps the delivery open and due (it waits while the subscription is
    disabled, and goes first once it is resumed). ``permanent`` (a write-back the target
    refused for good, which retrying cannot fix) ends the delivery dead at once.
    """
    if disposition == "delivered":
        return Step(DELIVERED, None)
    if disposition == "gone":
        return Step(FAILED, now, GONE_REASON)
    if disposition == "permanent":
        return Step(DEAD, None)
    if retry_in is None:
        return Step(DEAD, None)
    return Step(FAILED, now + timedelta(seconds=retry_in))


def may_record(status: str, attempts: int, attempt: int) -> bool:
    """Whether attempt number ``attempt`` may be recorded on a delivery in this state: only the
    claim that made it (the attempt count did not move meanwhile) on a delivery still open."""
    return status in OPEN and attempts == attempt - 1


def is_due(status: str, next_attempt_at: datetime, now: datetime) -> bool:
    return status in OPEN and next_attempt_at <= now


def blocked_by(earlier_status: str, same_key: bool, ordering: str) -> bool:
    """Whether an earlier delivery (lower archive position) of the same subscription keeps a
    later one from being claimed: while it is open and has the same ordering key, unless the
    subscription orders ``none``."""
    return ordering != "none" and same_key and earlier_status in OPEN


def held_until(follower_status: str, follower_next: datetime, head_next: datetime) -> datetime:
    """Hold-back: when the head of a key failed and retries at ``head_next``, a later open
    delivery of that key cannot go before it, so it moves out of the due range until then
    (claims then do not walk past it again and again)."""
    if follower_status in OPEN and follower_next < head_next:
        return head_next
    return follower_next


def released(follower_status: str, follower_next: datetime, now: datetime) -> datetime:
    """A manual retry of a key's head releases what it held back: due now, not at the old time."""
    if follower_status in OPEN and follower_next > now:
        return now
    return follower_next


def failing_reason(after_seconds: float) -> str:
    return f"nothing but failed attempts for {after_seconds:g} s"


def failed_too_long(failing_since: datetime | None, now: datetime, after_seconds: float) -> bool:
    """An active subscription that saw nothing but failures for ``after_seconds`` is disabled."""
    return failing_since is not None and failing_since <= now - timedelta(seconds=after_seconds)


def alerts_dead(event_type: str | None) -> bool:
    """Whether a delivery going dead raises an alert: not when it carried a hub event itself."""
    return not is_hub_event(event_type)


def alerts_disabled(failed_event_types: Iterable[str | None], *, delivered_some: bool = False) -> bool:
    """Whether disabling a subscription raises an alert: not when, in the outcomes that
    disabled it, nothing was delivered and only hub events were failing (a broken alert sink
    must not alert about itself)."""
    return delivered_some or not all(is_hub_event(t) for t in failed_event_types)


def message_id(subscription_id: uuid.UUID, event_id: str) -> str:
    """The ``webhook-id`` of every delivery of ``event_id`` to one subscription: a name-based
    UUID (v5), the same however often and by whatever route the event is sent again.

    Made by :func:`schemas.uuids.uuid5_text`: this runs once per delivery attempt."""
    return uuid5_text(subscription_id.bytes, event_id)


def needs_replay(statuses: Iterable[str], *, only_undelivered: bool) -> bool:
    """Whether a replay queues an event whose deliveries to the subscription are in
    ``statuses``: always, unless ``only_undelivered`` and one was delivered or is still open
    (queueing another would send it twice)."""
    return not only_undelivered or not any(s in REPLAY_SKIPS for s in statuses)
