"""The dispatcher: due outbox rows → signed webhook POSTs → recorded attempts.

Claims run ``FOR UPDATE SKIP LOCKED`` with a lease, so several dispatchers share the outbox
and a killed one's claims return to the pool when the lease ends (at-least-once). Per-key
order comes from the claim itself: a delivery is due only when no earlier delivery for the
same subscription and key is open. Up to ``concurrency`` attempts are in flight at once; a
slow sink holds one slot, not a whole round. New work arrives by LISTEN/NOTIFY, retries by
their due time, with a poll as the safety net.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, stop_never, wait_exponential

from hub.adapters.postgres.outbox import AttemptResult, ClaimedDelivery
from hub.errors import RetriableError
from subscriptions.retry import RetrySchedule
from subscriptions.sender import DeliveryOutcome, Disposition
from subscriptions.signing import webhook_headers

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Outbox(Protocol):
    async def claim(self, limit: int, lease_seconds: float) -> list[ClaimedDelivery]: ...
    async def record(self, results: list[AttemptResult]) -> None: ...
    async def next_due(self) -> datetime | None: ...


class Sender(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> DeliveryOutcome: ...


@dataclass
class DispatcherStats:
    attempts: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0


def next_state(
    claimed: ClaimedDelivery, outcome: DeliveryOutcome, schedule: RetrySchedule, started: datetime
) -> AttemptResult:
    """What an attempt's outcome makes of the delivery (pure)."""
    attempt = claimed.attempts + 1
    status, next_at, reason = "delivered", None, None
    if outcome.disposition is not Disposition.DELIVERED:
        # Retry-After (429/503) is a floor for the next wait, capped by the schedule itself.
        delay = schedule.next_delay(attempt, retry_after_s=outcome.retry_after_s)
        if delay is None:
            status = "dead"
        else:
            status, next_at = "failed", datetime.now(UTC) + timedelta(seconds=delay)
        if outcome.disposition is Disposition.GONE:
            reason = "the sink answered 410 Gone"
    return AttemptResult(
        delivery_id=claimed.id,
        subscription_id=claimed.subscription_id,
        attempt=attempt,
        started_at=started,
        duration_ms=outcome.duration_ms,
        status_code=outcome.status_code,
        error=outcome.error,
        response_excerpt=outcome.response_excerpt,
        new_status=status,
        next_attempt_at=next_at,
        disable_reason=reason,
    )


class Dispatcher:
    """Delivers outbox rows until stopped; on stop it finishes what is in flight."""

    def __init__(
        self,
        outbox: Outbox,
        sender: Sender,
        schedule: RetrySchedule,
        wakeup: asyncio.Event,
        *,
        concurrency: int = 64,
        batch_size: int = 200,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
    ):
        self._outbox = outbox
        self._sender = sender
        self._schedule = schedule
        self._wakeup = wakeup
        self._concurrency = concurrency
        self._batch_size = batch_size
        self._lease = lease_seconds
        self._poll = poll_seconds
        self.stats = DispatcherStats()
        self.running = False

    async def run(self, stop: asyncio.Event) -> None:
        self.running = True
        in_flight: set[asyncio.Task[AttemptResult]] = set()
        stopper = asyncio.create_task(stop.wait())
        try:
            while not (stop.is_set() and not in_flight):
                can_claim = not stop.is_set() and len(in_flight) <= self._concurrency // 2
                claimed_full = False
                if can_claim:
                    self._wakeup.clear()  # before the claim, so a NOTIFY during it is kept
                    room = min(self._batch_size, self._concurrency - len(in_flight))
                    claimed = await self._retrying(partial(self._outbox.claim, room, self._lease)) or []
                    in_flight.update(asyncio.create_task(self._attempt(c)) for c in claimed)
                    claimed_full = len(claimed) == room
                done = {t for t in in_flight if t.done()}
                if done:
                    in_flight -= done
                    await self._record([t.result() for t in done])
                    continue
                if claimed_full:
                    continue
                # Wait only for what can change the next step: a finished attempt always; a
                # NOTIFY or the stop signal only while they would lead somewhere (else: a spin).
                waiters: set[asyncio.Task[Any]] = set(in_flight)
                waker = asyncio.create_task(self._wakeup.wait()) if can_claim else None
                if waker is not None:
                    waiters.add(waker)
                if not stop.is_set():
                    waiters.add(stopper)
                timeout = await self._idle_timeout() if not in_flight else None
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if waker is not None:
                    waker.cancel()
        finally:
            stopper.cancel()
            self.running = False

    async def _attempt(self, claimed: ClaimedDelivery) -> AttemptResult:
        body = json.dumps(claimed.event, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            **claimed.headers,
            **webhook_headers(claimed.secret, str(claimed.id), int(time.time()), body),
            "content-type": "application/cloudevents+json",
        }
        started = datetime.now(UTC)
        outcome = await self._sender.post(claimed.sink, body, headers)
        result = next_state(claimed, outcome, self._schedule, started)
        log.info(
            "delivery_attempted" if result.new_status == "delivered" else "delivery_failed",
            delivery_id=str(claimed.id),
            subscription_id=str(claimed.subscription_id),
            event_id=claimed.event_id,
            attempt=result.attempt,
            status_code=outcome.status_code,
            error=outcome.error,
            outcome=result.new_status,
        )
        return result

    async def _record(self, results: list[AttemptResult]) -> None:
        await self._retrying(lambda: self._outbox.record(results), forever=True)
        for r in results:
            self.stats.attempts += 1
            if r.new_status == "delivered":
                self.stats.delivered += 1
            elif r.new_status == "dead":
                self.stats.dead += 1
                log.warning(
                    "delivery_dead", delivery_id=str(r.delivery_id), subscription_id=str(r.subscription_id)
                )
            else:
                self.stats.failed += 1

    async def _idle_timeout(self) -> float:
        due = await self._retrying(self._outbox.next_due)
        if due is None:
            return self._poll
        return min(self._poll, max(0.005, (due - datetime.now(UTC)).total_seconds()))

    async def _retrying(self, call: Callable[[], Awaitable[T]], *, forever: bool = False) -> T | None:
        """Run a store call. A database outage waits a moment; claims then give up for this
        round (None), while recording an outcome keeps trying so no attempt goes unrecorded."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(RetriableError),
            wait=wait_exponential(multiplier=0.2, max=5),
            stop=stop_never if forever else stop_after_attempt(1),
            before_sleep=lambda s: log.warning(
                "dispatcher_store_unavailable", error=str(s.outcome.exception() if s.outcome else "")
            ),
            retry_error_callback=lambda s: None,
        ):
            with attempt:
                return await call()
        return None
