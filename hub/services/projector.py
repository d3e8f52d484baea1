"""The projector: the log → PostgreSQL, one transaction per batch, positions committed after.

Per batch it records every event as processed (a duplicate ``source``+``id`` changes
nothing), archives the new ones and writes one outbox row per recipient, all in one
transaction. Positions are committed only after that transaction committed and was made
durable (:class:`hub.services.projector_commits.Committer`), so a crash at any point replays
records that the dedupe then skips. It reads through the :class:`hub.ports.LogConsumer` port
and never sees a driver.

Error policy: only infrastructure errors (:class:`RetriableError`: broker or database
unreachable) are retried, with backoff, until the hub stops (then the batch is left
uncommitted for the next owner). Anything that concerns one record goes to the dead-letter
topic with the error in its headers and the partition moves on: a record larger than any
event the hub accepts or one that is not a valid CloudEvent (the consumer hands both over
with their error), one PostgreSQL or the serialiser refuses (:class:`PermanentError`), and
one that raises an error nobody foresaw. A batch that fails as a whole is applied again
record by record, so only the bad record is parked. A role never dies of one record.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from opentelemetry.trace import SpanKind
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from hub.errors import PermanentError, RetriableError
from hub.ports import (
    DeadLetters,
    LogConsumer,
    LoggedEvent,
    LogRecord,
    ProjectionStore,
)
from hub.ports.metrics import NO_METRICS, Metrics
from hub.services.collector import defer_full_collections, freeze_start_up_heap
from hub.services.landscape import DerivedEvents
from hub.services.projection import Applied, apply_events
from hub.services.projector_commits import Committer, span
from hub.tracing import carried, context_of, left_out, tracer, tracing_on

log = structlog.get_logger(__name__)

#: How long one poll waits for records before the member looks at stop and drain again.
POLL_SECONDS = 0.2
#: How long a draining member with nothing to read waits for the log to answer it after the
#: drain began: the end it knew may predate the last acknowledged publish (a CI run's drain left
#: 357 of 3,000 events unarchived), but a dead or hung broker answers nothing (then: that end).
DRAIN_UNANSWERED_SECONDS = 2.0


@dataclass
class ProjectorStats:
    batches: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    derived: int = 0
    deliveries: int = 0
    stale: int = 0


class Projector:
    """``members`` consumer-group members applying the log to the store."""

    def __init__(
        self,
        consumers: Callable[[], LogConsumer],
        store: ProjectionStore,
        dead_letters: DeadLetters,
        *,
        derive: DerivedEvents | None,
        batch_size: int = 500,
        members: int = 1,
        metrics: Metrics = NO_METRICS,
    ):
        self._metrics = metrics
        self._derive = derive
        self._members = members
        self._started = 0
        self._consumers = consumers
        self._store = store
        self._dead_letters = dead_letters
        self._batch_size = batch_size
        self._live: list[LogConsumer] = []
        self._ending = False  # stop or drain was set: members no longer idle
        self._lost = asyncio.Event()  # the log is gone (:meth:`log_lost`)
        self._committers: list[Committer] = []
        self._running: asyncio.Future[list[None]] | None = None  # the members, while they run
        self.stats = ProjectorStats()

    @property
    def running(self) -> bool:
        return self._started == self._members

    async def run(
        self, stop: asyncio.Event, *, drain: asyncio.Event | None = None, drain_timeout: float = 60.0
    ) -> None:
        """Consume until ``stop`` is set. When ``drain`` is set first, keep going until every
        assigned partition is caught up (what was accepted is projected), then return. After
        :meth:`log_lost` only ``stop`` ends it (the process stops without a drain then).

        Runs ``members`` consumers of the group side by side: while one waits for PostgreSQL,
        another decodes and validates its batch, so one process keeps both cores busy. Each
        partition still has one owner, so the events of one key stay in order."""
        freeze_start_up_heap()
        watcher = asyncio.create_task(self._stop_idling_on(stop, drain), name="projector-stop-idling")
        members = (self._member(stop, drain, drain_timeout) for _ in range(self._members))
        self._running = asyncio.gather(*members)
        try:
            await self._running
            if self._lost.is_set():
                await stop.wait()  # the role stays up, not ready, until the process stops
        finally:
            watcher.cancel()

    async def log_lost(self, within: float) -> None:
        """The log the members read is gone: the embedded broker died with its in-memory log,
        and ``run`` starts it again at the same address, empty. The members commit nothing more,
        not even a round under way, and leave (waited for up to ``within`` seconds). One that
        lived on beside the new broker would rejoin the group there and commit its positions of
        the old log, and the group would skip every record below them: events relayed from the
        write-ahead log or published since, acknowledged and never projected (README "Outages")."""
        self._lost.set()
        self._ending = True
        for committer in self._committers:
            committer.abandon()
        for consumer in self._live:
            consumer.stop_idling()
            consumer.wake()
        if self._running is not None:
            await asyncio.wait({self._running}, timeout=within)

    async def _stop_idling_on(self, stop: asyncio.Event, drain: asyncio.Event | None) -> None:
        """An idle member's poll waits for a write to the log, not for a timer: tell the members
        at once when the stop or the drain comes, instead of looking at both five times a
        second while idle (issue 17: idle CPU)."""
        signals = [asyncio.ensure_future(e.wait()) for e in (stop, drain) if e is not None]
        try:
            await asyncio.wait(signals, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in signals:
                waiting.cancel()
        self._ending = True
        for consumer in self._live:
            consumer.stop_idling()

    async def _member(self, stop: asyncio.Event, drain: asyncio.Event | None, drain_timeout: float) -> None:
        consumer = self._consumers()
        committer = Committer(consumer, self._store, self._metrics.read_again)
        self._live.append(consumer)
        self._committers.append(committer)
        if self._ending:
            consumer.stop_idling()
        await consumer.start()
        self._started += 1
        drain_deadline: float | None = None
        drain_began = 0.0  # wall clock: what the log answers after it counts (caught_up)
        unanswered: float | None = None  # since when the drain has waited for nothing to read
        try:
            await committer.begin()
            while not stop.is_set() and not self._lost.is_set():
                if (back := committer.rewind()) is not None:
                    await consumer.seek(back)
                read_during = committer.incarnation
                try:
                    batch = await consumer.poll(max_records=self._batch_size, timeout_s=POLL_SECONDS)
                except RetriableError as e:  # the broker is away: wait, then read on
                    log.warning("log_unreadable", error=str(e)[:500])
                    await _pause(stop, 1.0)
                    continue
                if batch:
                    unanswered = None
                    # A batch keeps its records, events and rows alive across awaits: see
                    # hub.services.collector for why full collections wait meanwhile.
                    with defer_full_collections():
                        applied = await self._handle_with_retry(batch, stop)
                    if applied:
                        committer.behind(span(batch), read_during)
                    continue
                if drain is not None and drain.is_set():
                    if drain_deadline is None:
                        drain_deadline, drain_began = time.monotonic() + drain_timeout, time.time()
                    unanswered = unanswered or time.monotonic()
                    # Caught up counts once the commit round under way found nothing to read again.
                    if await self._drained(consumer, drain_began, unanswered, drain_deadline) and (
                        await committer.settled() or time.monotonic() > drain_deadline
                    ):
                        return
        finally:
            self._started -= 1
            self._live.remove(consumer)
            self._committers.remove(committer)
            try:
                if self._lost.is_set():
                    committer.abandon()
                else:
                    await committer.done()  # the last positions are committed before the member leaves
            finally:
                await consumer.stop()

    @staticmethod
    async def _drained(consumer: LogConsumer, began: float, unanswered: float, deadline: float) -> bool:
        """Whether a draining member with nothing to read leaves: caught up as the log answered
        after the drain ``began``; else, after :data:`DRAIN_UNANSWERED_SECONDS` with nothing to
        read, caught up as far as the member knows (logged); else at the ``deadline``."""
        if await consumer.caught_up(since=began):
            log.info("projector_drained", caught_up=True)
            return True
        if time.monotonic() > deadline:
            log.info("projector_drained", caught_up=False)
            return True
        if time.monotonic() - unanswered <= DRAIN_UNANSWERED_SECONDS or not await consumer.caught_up():
            return False
        log.warning(
            "projector_drained_unconfirmed",
            reason=f"no answer of the log in the {DRAIN_UNANSWERED_SECONDS:g} s after the drain began "
            "showed this member at the end of its partitions (the broker is away?): what it holds "
            "beyond the member's last answer stays in it for the next start",
        )
        return True

    async def _handle_with_retry(self, batch: list[LogRecord], stop: asyncio.Event) -> bool:
        """Apply ``batch``; False when the hub stops during an outage and it is left unapplied."""
        # Broker or database outages: keep the batch and try again; never commit past it.
        # Records parked in the DLQ by an earlier try are not parked (nor applied) again.
        parked: set[tuple[int, int]] = set()
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(RetriableError),
                stop=lambda _state: stop.is_set(),
                wait=wait_exponential(multiplier=0.2, max=10),
                sleep=lambda seconds: _pause(stop, seconds),
                before_sleep=lambda state: log.warning(
                    "projection_retrying", error=str(state.outcome.exception() if state.outcome else "")
                ),
                reraise=True,
            ):
                with attempt:
                    await self._handle(batch, parked)
        except RetriableError as e:
            if not stop.is_set():
                raise
            # Stopping during an outage: leave the batch uncommitted; the next owner replays it.
            log.warning("projection_abandoned_on_stop", error=str(e)[:500])
            return False
        return True

    async def _handle(self, batch: list[LogRecord], parked: set[tuple[int, int]]) -> None:
        decoded: list[tuple[LoggedEvent, LogRecord]] = []
        for record in batch:
            if (record.partition, record.offset) in parked:
                continue
            if record.event is None:  # not a CloudEvent, or too large to read
                await self._dead_letter(record, record.error or ValueError("unreadable record"), parked)
                continue
            item = LoggedEvent(record.event, record.partition, record.offset, _accepted(record))
            decoded.append((item, record))
        logged = [item for item, _ in decoded]
        started = time.perf_counter()
        with _batch_spans(logged):
            done = await self._apply_batch(logged, decoded, parked)
        self._metrics.projected(done.new, time.perf_counter() - started)
        self.stats.batches += 1
        self.stats.applied += done.new
        self.stats.duplicates += len(logged) - done.new
        self.stats.derived += done.derived
        self.stats.deliveries += done.deliveries
        self.stats.stale += done.stale
        if logged:
            log.debug(
                "projection_applied",
                events=len(logged),
                new=done.new,
                derived=done.derived,
                deliveries=done.deliveries,
            )

    async def _apply_batch(
        self,
        logged: list[LoggedEvent],
        decoded: list[tuple[LoggedEvent, LogRecord]],
        parked: set[tuple[int, int]],
    ) -> Applied:
        try:
            done = await apply_events(self._store, logged, self._derive) if logged else Applied()
        except RetriableError:
            raise
        except Exception as e:  # noqa: BLE001 - PermanentError or unforeseen: find the record
            # One bad event must not sink its neighbours: retry them one by one.
            log.warning("projection_batch_rejected", error=str(e)[:500], size=len(logged))
            done = Applied()
            for item, record in decoded:
                done += await self._apply_one(item, record, parked)
        return done

    async def _apply_one(self, item: LoggedEvent, record: LogRecord, parked: set[tuple[int, int]]) -> Applied:
        """Apply one record on its own; park it when the error concerns it (not an outage)."""
        try:
            return await apply_events(self._store, [item], self._derive)
        except RetriableError:
            raise
        except PermanentError as e:
            await self._dead_letter(record, e, parked)
        except Exception as e:  # policy: one record never stops the role
            log.exception("projection_record_failed", origin=_origin(record), event_id=item.event.id)
            await self._dead_letter(record, e, parked)
        return Applied()

    async def _dead_letter(
        self, record: LogRecord, error: BaseException, parked: set[tuple[int, int]]
    ) -> None:
        if (record.partition, record.offset) in parked:
            return
        await self._dead_letters.dead_letter(record.key, record.value, list(record.headers), error, record)
        parked.add((record.partition, record.offset))
        self.stats.dead_lettered += 1
        self._metrics.dead_lettered()


@contextlib.contextmanager
def _batch_spans(logged: Sequence[LoggedEvent]) -> Iterator[None]:
    """The "project batch" spans of one batch: one per trace context its events carry (a
    child of that publish, so a subscriber's trace shows its event's projection), and one of
    its own for the events that carry none. Events published together share their publish
    span's context, so this is a span per publish batch in the projector batch, not one per
    event: a sampled span costs ~70 us of CPU made and exported (benchmarks.tracing)."""
    if not tracing_on():  # no SDK: every span would be a no-op
        yield
        return
    counts: dict[str | None, int] = {}
    for item in logged:
        key = carried(item.event)
        counts[key] = counts.get(key, 0) + 1
    # A publish that was not sampled, under a parent-based sampler: its span would not be
    # recorded, so it is not made (the sampler's call, a span id and a non-recording span per
    # publish in the batch, most of the projector's tracing CPU when nine traces in ten are left
    # out). The events still carry their context on to the dispatcher, which does the same.
    traced = {tp: n for tp, n in counts.items() if not left_out(tp)} if counts else {None: 0}
    with contextlib.ExitStack() as spans:  # each span ends with the batch, its error recorded
        for traceparent, count in traced.items():
            spans.enter_context(
                tracer().start_span(
                    "project batch",
                    context=context_of(traceparent),
                    kind=SpanKind.CONSUMER,
                    attributes={"messaging.batch.message_count": count},
                )
            )
        yield


def _accepted(record: LogRecord) -> datetime | None:
    """When the log accepted the record (its timestamp), archived for the end-to-end time."""
    ms = record.timestamp_ms
    return None if ms is None or ms < 0 else datetime.fromtimestamp(ms / 1000, UTC)


def _origin(record: LogRecord) -> str:
    return f"{record.topic}/{record.partition}/{record.offset}"


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when the hub stops meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
