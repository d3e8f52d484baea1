"""What an attempt's outcome makes of a delivery: the retry policy and the next state (pure).

The dispatcher (:mod:`hub.services.dispatcher`) applies them to each attempt it made."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from hub.ports.delivery import AttemptResult, ClaimedDelivery
from subscriptions.lifecycle import DELIVERED, after_attempt
from subscriptions.retry import RetrySchedule
from subscriptions.sender import DeliveryOutcome, Disposition

__all__ = ["RetryPolicy", "next_state"]


@dataclass(frozen=True)
class RetryPolicy:
    """The global schedule (a subscription may bring its own delays) and its bounds."""

    schedule: RetrySchedule
    slow_down_s: float = 60.0  # least wait after a 429 or a timeout
    retry_after_max_s: float = 86_400.0  # longest Retry-After honoured

    def schedule_for(self, claimed: ClaimedDelivery) -> RetrySchedule:
        if claimed.retry_schedule:
            return self.schedule.with_delays(claimed.retry_schedule)
        return self.schedule

    def delay(self, claimed: ClaimedDelivery, outcome: DeliveryOutcome, attempts_made: int) -> float | None:
        slow_down = outcome.status_code == 429 or outcome.error == "timeout"
        return self.schedule_for(claimed).next_delay(
            attempts_made,
            retry_after_s=outcome.retry_after_s,
            floor_s=self.slow_down_s if slow_down else 0.0,
            retry_after_max_s=self.retry_after_max_s,
        )


def next_state(
    claimed: ClaimedDelivery,
    outcome: DeliveryOutcome,
    policy: RetryPolicy,
    started: datetime,
    now: datetime | None = None,
) -> AttemptResult:
    """What an attempt's outcome makes of the delivery (pure; ``now``: when it ended)."""
    attempt = claimed.attempts + 1
    retry_in = None
    if outcome.disposition not in (Disposition.DELIVERED, Disposition.GONE, Disposition.PERMANENT):
        # A manual retry restarts the schedule: count from the attempts made since.
        retry_in = policy.delay(claimed, outcome, attempt - claimed.retry_base)
    now = now or datetime.now(UTC)
    step = after_attempt(outcome.disposition, retry_in, now)
    accepted = claimed.accepted_at
    return AttemptResult(
        delivery_id=claimed.id,
        subscription_id=claimed.subscription_id,
        attempt=attempt,
        started_at=started,
        duration_ms=outcome.duration_ms,
        status_code=outcome.status_code,
        error=outcome.error,
        response_excerpt=outcome.response_excerpt,
        new_status=step.status,
        next_attempt_at=step.next_attempt_at,
        disable_reason=step.disable_reason,
        event_id=claimed.event_id,
        event_type=str(claimed.event.get("type", "")),
        sink=claimed.sink,
        archive_seq=claimed.archive_seq,
        ordering_key=_ordering_key(claimed),
        delivered_after_s=(now - accepted).total_seconds() if accepted and step.status == DELIVERED else None,
    )


def _ordering_key(claimed: ClaimedDelivery) -> str | None:
    return claimed.ordering_key if claimed.ordering == "key" else None
