"""The dispatcher: due outbox rows → signed webhook POSTs → recorded attempts.

Claims run ``FOR UPDATE SKIP LOCKED`` with a lease, so several dispatchers share the outbox
and a killed one's claims return to the pool when the lease ends (at-least-once). Per-key
order comes from the claim itself: a delivery is due only when no earlier delivery for the
same subscription and key is open (unless the subscription chose ``ordering: none``). Up to
``concurrency`` attempts are in flight at once, half of them per claim (the next claim runs
while the last one's are sent); each subscription gets at most its own concurrency cap and
rate (:mod:`subscriptions.flow`), so a slow or dead sink holds its own slots, never another
subscription's. With ``claim_ahead`` a subscription may hold up to twice its cap claimed, the
ones beyond the cap waiting for a place (:mod:`hub.services.send_gate`); they count against
``concurrency`` only once they send, and claimed ones together stay under twice it. New work
arrives by LISTEN/NOTIFY, retries by their due time, with a poll as the safety net.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar

import structlog
from opentelemetry.trace import SpanKind
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, stop_never, wait_exponential

from hub.errors import RetriableError
from hub.ports import Outbox
from hub.ports.delivery import AttemptResult, ClaimedDelivery
from hub.ports.metrics import NO_METRICS, Metrics
from hub.services.delivery_policy import RetryPolicy, next_state
from hub.services.send_gate import SendGate
from hub.tracing import TRACEPARENT, context_of, left_out, passed_on, traceparent_of, tracer, tracing_on
from schemas.landscape.privacy import visible_event
from subscriptions.delivery import DeliveryTarget
from subscriptions.flow import FlowControl
from subscriptions.lifecycle import DEAD, DELIVERED, message_id
from subscriptions.sender import DeliveryOutcome

__all__ = ["Client", "Dispatcher", "DispatcherStats", "free_slot"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: While an attempt runs: frees its place in the subscription's concurrency cap before the
#: attempt ends. A sink whose requests to the target are done, but whose attempt still does the
#: hub's own work, calls it (a write-back making its outcome event durable: 40-50 % of each
#: attempt in benchmarks.signalen): the next delivery goes to the target meanwhile. The cap still bounds
#: the requests the target has in flight, and the delivery is recorded only when the attempt
#: ends, so per-key order and at-least-once are unchanged.
free_slot: ContextVar[Callable[[], None]] = ContextVar("free_slot", default=lambda: None)


class Client(Protocol):
    async def deliver(
        self, target: DeliveryTarget, event: Mapping[str, Any], msg_id: str, *, timeout_s: float | None = None
    ) -> DeliveryOutcome: ...


@dataclass
class DispatcherStats:
    attempts: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0


def _freed(recording: asyncio.Task[bool]) -> bool:
    return recording.exception() is not None or recording.result()  # failed: the loop re-raises it


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _traceparent(event: Mapping[str, Any]) -> str | None:
    value = event.get(TRACEPARENT)
    return value if isinstance(value, str) else None


class Dispatcher:
    """Delivers outbox rows until stopped; on stop it finishes what is in flight."""

    def __init__(
        self,
        outbox: Outbox,
        client: Client,
        policy: RetryPolicy,
        wakeup: asyncio.Event,
        *,
        concurrency: int = 160,
        concurrency_per_subscription: int = 16,
        claim_ahead: bool = False,
        batch_size: int = 200,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        metrics: Metrics = NO_METRICS,
        clock: Callable[[], datetime] = _utcnow,
    ):
        self._metrics = metrics
        #: The time retries are scheduled by; a test moves it (a day-long outage in a second).
        self._clock = clock
        self._outbox = outbox
        self._client = client
        self._policy = policy
        self._flow = FlowControl(concurrency_per_subscription, ahead=claim_ahead)
        self._gate = SendGate()
        self._wakeup = wakeup
        self._concurrency = concurrency
        #: The most one claim takes (see :meth:`run`, ``can_claim``): a claim runs while the other
        #: half is in flight. Claims of the whole concurrency were sent, answered and ended
        #: together, so each next claim's round trip left every sink idle (issue 17: fan-out fell
        #: 10-15 % once a claim gave an idle subscription its whole cap at once).
        self._half = (concurrency + 1) // 2
        self._batch_size = batch_size
        self._lease = lease_seconds
        self._poll = poll_seconds
        self.stats = DispatcherStats()
        self.running = self.claiming = False  # claiming: would claim now (hub/services/dispatcher_wakeup.py)
        #: Whether an SDK tracer provider is installed, asked once per claim round: asking per
        #: attempt (an environment lookup inside OpenTelemetry) was 1.5 % of the work child's
        #: py-spy samples in benchmarks.fanout.
        self._tracing = tracing_on()

    async def run(self, stop: asyncio.Event) -> None:
        self.running = True
        in_flight: set[asyncio.Task[AttemptResult]] = set()
        # Outcomes are recorded by one background transaction at a time; what finishes while it
        # runs waits for the next one, so recording batches itself under load and never holds
        # up claiming and sending.
        unrecorded: list[AttemptResult] = []
        recorder: asyncio.Task[bool] | None = None  # its result: :meth:`_record`
        claimed_while_recording = False
        stopper = asyncio.create_task(stop.wait())
        # Whether the outbox may hold a due delivery that the last claim did not take, but for
        # the subscriptions in ``bounded``, whose room bounded it (:meth:`_bounded`): they are
        # claimed for again once one of them has room. Until then a claim could only find nothing.
        settled = False
        bounded: set[Any] = set()
        try:
            while not (stop.is_set() and not in_flight and not unrecorded and recorder is None):
                # What waits at the gate does not count against the concurrency (a slow sink's
                # waiting deliveries must not hold back another subscription's claims).
                sending = len(in_flight) - self._gate.waiting_total
                can_claim = self.claiming = (
                    not stop.is_set()
                    and sending <= self._concurrency // 2
                    and len(in_flight) < 2 * self._concurrency
                )
                claimed_full = room_again = False
                # A recording may free its key's next delivery: when the outbox saw one waiting
                # (Outbox.record), or a claim ran meanwhile (its snapshot may have missed both).
                # One that ended before this claim is seen by it; else the loop claims once more.
                recorded_before = recorder is not None and recorder.done()
                if recorder is not None and recorded_before and (claimed_while_recording or _freed(recorder)):
                    settled = False
                if can_claim and (self._wakeup.is_set() or not settled or self._room_again(bounded)):
                    self._wakeup.clear()  # before the claim, so a NOTIFY during it is kept
                    claimed_while_recording |= recorder is not None and not recorder.done()
                    self._tracing = tracing_on()
                    room = min(
                        self._batch_size,
                        self._concurrency - sending,
                        self._half,
                        2 * self._concurrency - len(in_flight),
                    )
                    offered = self._flow.room()
                    answer = await self._retrying(partial(self._outbox.claim, room, self._lease, offered))
                    claimed = answer or []
                    self._track(claimed, offered)
                    in_flight.update(asyncio.create_task(self._attempt_in_slot(c)) for c in claimed)
                    claimed_full = len(claimed) == room
                    settled = answer is not None and not claimed_full
                    bounded = self._bounded(claimed, offered) if settled else set()
                    room_again = self._room_again(bounded)  # (what it claimed waits for a place)
                done = {t for t in in_flight if t.done()}
                if done:
                    in_flight -= done
                    unrecorded.extend(t.result() for t in done)  # each freed its slot (_attempt_in_slot)
                recorded = False  # during the claim: claim again
                if recorder is not None and recorder.done():
                    freed = await recorder or claimed_while_recording  # re-raises what it could not survive
                    recorder = None
                    if not recorded_before and freed:
                        settled, recorded = False, True
                if unrecorded and recorder is None:
                    recorder = asyncio.create_task(self._record(unrecorded))
                    unrecorded, claimed_while_recording = [], False
                if done or claimed_full or recorded or room_again:
                    continue
                # Wait only for what can change the next step: a finished attempt or recording
                # always; a NOTIFY or the stop signal only while they would lead somewhere.
                waiters: set[asyncio.Task[Any]] = set(in_flight)
                if recorder is not None:
                    waiters.add(recorder)
                waker = asyncio.create_task(self._wakeup.wait()) if can_claim else None
                if waker is not None:
                    waiters.add(waker)
                if not stop.is_set():
                    waiters.add(stopper)
                if not waiters:
                    continue  # stopped with nothing in flight or recording: the loop ends
                timeout = await self._idle_timeout() if not waiters - {stopper} - {waker} else None
                throttle = self._flow.wake_in()
                if throttle is not None and can_claim:
                    timeout = max(0.005, throttle if timeout is None else min(timeout, throttle))
                ended, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not ended:  # the poll, a due time or a throttled subscription's token
                    settled = False
                if waker is not None:
                    waker.cancel()
        finally:
            stopper.cancel()
            self.running = self.claiming = False

    def _bounded(self, claimed: list[ClaimedDelivery], offered: Mapping[Any, int]) -> set[Any]:
        """After a claim that was not full: the subscriptions whose room bounded it, which may
        have more due deliveries than it took.

        One that got all the room it was offered or, offered none (idle here), all the room the
        claim gives it (:meth:`FlowControl.idle_room`), and one left without room now. The
        outbox holds nothing else due for this dispatcher until one of these: a NOTIFY (new
        deliveries, a retry or resume by an operator: it sets the wake-up), a recording that
        freed a delivery (see :meth:`run`), a due time, a token or the poll (a wait that times
        out). The loop claims again only then, or once one of these subscriptions has room
        again (:meth:`FlowControl.room_for`): each empty claim was two statements (CLAIM and
        CLAIM_HEADS)."""
        got: dict[Any, tuple[int, int]] = {}  # per subscription: claimed, the room it had
        for c in claimed:
            sid = c.subscription_id
            room = offered[sid] if sid in offered else self._flow.idle_room(c.max_concurrency, c.max_rate)
            got[sid] = (got.get(sid, (0, 0))[0] + 1, room)
        bounded = {sid for sid, (n, room) in got.items() if n >= room}
        bounded.update(sid for sid, free in self._flow.room().items() if free <= 0)
        return bounded

    def _room_again(self, bounded: set[Any]) -> bool:
        return bool(bounded) and self._flow.room_for(bounded)

    def _track(self, claimed: list[ClaimedDelivery], offered: Mapping[Any, int]) -> None:
        counts: dict[Any, tuple[int, ClaimedDelivery]] = {}
        for c in claimed:
            n, _ = counts.get(c.subscription_id, (0, c))
            counts[c.subscription_id] = (n + 1, c)
        for sid, (n, c) in counts.items():
            self._flow.claimed(sid, n, cap=c.max_concurrency, rate=c.max_rate, offered=offered.get(sid))

    async def _attempt_in_slot(self, claimed: ClaimedDelivery) -> AttemptResult:
        """One attempt, once its subscription has a place to send (:class:`SendGate`); its slot
        is freed when it ends or, earlier, when the sink calls :data:`free_slot` (then the next
        claimed delivery may send, and the loop is woken to claim one more)."""
        sid = claimed.subscription_id
        held, entered = True, False

        def free(early: bool) -> None:
            nonlocal held
            if held:
                held = False
                if entered:
                    self._gate.leave(sid)
                self._flow.finished(sid)
                if early and self._flow.room_for((sid,)):
                    self._wakeup.set()

        free_slot.set(lambda: free(True))  # this task's own context
        try:
            await self._gate.enter(sid, claimed.max_concurrency or self._flow.default_concurrency)
            entered = True
            return await self._attempt(claimed)
        finally:
            free(False)

    async def _attempt(self, claimed: ClaimedDelivery) -> AttemptResult:
        # The attempt continues the event's trace; the sink gets it as the traceparent header
        # (the event's own context when tracing is off), so a subscriber can join the trace.
        # Without an SDK, or when the sampler leaves this trace out (its publish was not sampled),
        # the span would not be recorded: skip making it, pass the event's context on.
        carried = _traceparent(claimed.event)
        if not self._tracing or left_out(carried):
            outcome, result = await self._send(claimed, passed_on(carried) if carried else None)
        else:
            # Not made current (no context attach/detach) and its attributes given at once, not
            # one locked set_attribute each. A sampled attempt's span is the hub's tracing floor
            # per delivered event: ~30 us to make and end, ~45 us to export (benchmarks.tracing).
            with tracer().start_span(
                "deliver attempt",
                context=context_of(carried),
                kind=SpanKind.CLIENT,
                attributes={
                    "koppelhub.subscription.id": str(claimed.subscription_id),
                    "koppelhub.delivery.attempt": claimed.attempts + 1,
                },
            ) as span:
                outcome, result = await self._send(claimed, traceparent_of(span))
                if span.is_recording():
                    span.set_attribute("koppelhub.delivery.outcome", result.new_status)
                    if outcome.status_code is not None:
                        span.set_attribute("http.response.status_code", outcome.status_code)
        # A delivered attempt is recorded in the delivery log already; a line per delivery at
        # info would cost more CPU than signing it, so it is debug (and its fields are not even
        # built unless debug is on). Failures stay at info.
        delivered = result.new_status == DELIVERED
        if delivered and not log.is_enabled_for(logging.DEBUG):
            return result
        (log.debug if delivered else log.info)(
            "delivery_attempted" if delivered else "delivery_failed",
            delivery_id=str(claimed.id),
            subscription_id=str(claimed.subscription_id),
            event_id=claimed.event_id,
            attempt=result.attempt,
            status_code=outcome.status_code,
            error=outcome.error,
            outcome=result.new_status,
        )
        return result

    async def _send(
        self, claimed: ClaimedDelivery, traceparent: str | None
    ) -> tuple[DeliveryOutcome, AttemptResult]:
        headers = claimed.headers if traceparent is None else {**claimed.headers, TRACEPARENT: traceparent}
        target = DeliveryTarget(
            sink=claimed.sink,
            secrets=claimed.secrets,
            headers=headers,
            content_mode=claimed.content_mode,
            auth=claimed.auth or {},
        )
        started = self._clock()
        event = visible_event(claimed.event, claimed.organisatie)  # private fields stay with their owner
        msg_id = message_id(claimed.subscription_id, claimed.event_id)  # stable across re-sends
        outcome = await self._client.deliver(target, event, msg_id)
        return outcome, next_state(claimed, outcome, self._policy, started, self._clock())

    async def _record(self, results: list[AttemptResult]) -> bool:
        freed = await self._retrying(lambda: self._outbox.record(results), forever=True)
        outcomes = Counter(r.new_status for r in results)
        self.stats.attempts += len(results)
        self.stats.delivered += outcomes[DELIVERED]
        self.stats.dead += outcomes[DEAD]
        self.stats.failed += len(results) - outcomes[DELIVERED] - outcomes[DEAD]
        for r in results:
            if r.new_status == DEAD:
                log.warning(
                    "delivery_dead", delivery_id=str(r.delivery_id), subscription_id=str(r.subscription_id)
                )
        # Counted per recording round, as recorded: a few metric writes per round, not per attempt.
        self._metrics.attempts_recorded(
            outcomes,
            (r.duration_ms / 1000 for r in results),
            (r.delivered_after_s for r in results if r.delivered_after_s is not None),
        )
        return freed is not False

    async def _idle_timeout(self) -> float:
        """How long to wait for a NOTIFY: until the next due delivery, at most the poll."""
        if self._wakeup.is_set():  # a NOTIFY came during the last claim: claim again at once,
            return self._poll  # not after a round trip for the next due time
        due = await self._retrying(self._outbox.next_due)
        if due is None:
            return self._poll
        return min(self._poll, max(0.005, (due - self._clock()).total_seconds()))

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
