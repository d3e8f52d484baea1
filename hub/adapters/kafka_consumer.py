"""Kafka adapter of the :class:`hub.ports.LogConsumer` port: one aiokafka consumer-group member.

Everything aiokafka-specific about reading the log lives here: the consumer's settings, the
rebalance listener (:class:`hub.adapters.kafka_membership.Membership`: it tells an empty
assignment from none yet, and bounds what a member commits), decoding records in the
CloudEvents Kafka binding, the high-water marks behind :meth:`caught_up` (not
``end_offsets()``, which Tansu gets wrong, INFRA.md), the translation of driver errors, and
idling (:class:`_Idling`): a member that read nothing for a while stops fetching.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Collection, Mapping

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from hub.adapters.kafka import LogWritten, make_consumer
from hub.adapters.kafka_membership import Membership
from hub.errors import RecordTooLarge, RetriableError
from hub.ports.log import LogRecord
from hub.ports.members import MemberRegistry
from hub.settings import KafkaSettings
from schemas import EnvelopeError
from schemas.bindings import from_kafka_record

__all__ = ["KafkaLogConsumer", "quiet_after_s"]

log = structlog.get_logger(__name__)


#: How long :meth:`KafkaLogConsumer.caught_up` waits for a position (one being reset asks the
#: broker): longer, and the member is not known to be caught up yet.
POSITION_S = 0.5
#: While records flow, how often a member looks at its partitions that returned none for a
#: position past their end (:meth:`KafkaLogConsumer._rewind_lost_logs`); a poll that returned
#: nothing looks every time.
REWIND_LOOK_S = 1.0


def decode(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: tuple[tuple[str, bytes], ...],
    max_bytes: int | None = None,
    timestamp_ms: int | None = None,
) -> LogRecord:
    """A record with its CloudEvent, or with the reason it is not one: larger than
    ``max_bytes`` (not even decoded), not a valid CloudEvent, or unreadable for a reason nobody
    foresaw (logged; the projector parks it rather than die of it)."""
    # One LogRecord per record, built once with its outcome (``dataclasses.replace`` on a
    # record built up front cost about a quarter of this function's time).
    error: Exception
    if max_bytes is not None:
        size = len(value or b"") + len(key or b"") + sum(len(n) + len(v or b"") for n, v in headers)
        if size > max_bytes:
            error = RecordTooLarge(f"record is {size} bytes, more than {max_bytes}")
            return LogRecord(
                topic, partition, offset, key, value, headers, error=error, timestamp_ms=timestamp_ms
            )
    try:
        event = from_kafka_record(key, value, headers)
    except EnvelopeError as e:
        error = e
    except Exception as e:  # policy: one record never stops the projector
        log.exception("log_record_unreadable", origin=f"{topic}/{partition}/{offset}")
        error = e
    else:
        return LogRecord(
            topic, partition, offset, key, value, headers, event=event, timestamp_ms=timestamp_ms
        )
    return LogRecord(topic, partition, offset, key, value, headers, error=error, timestamp_ms=timestamp_ms)


def quiet_after_s(settings: KafkaSettings) -> float:
    """How long a member that read nothing keeps fetching before it idles (:class:`_Idling`);
    also how long a woken member fetches at least (``hub.adapters.postgres.notify``)."""
    return max(1.0, 20 * settings.fetch_max_wait_ms / 1000)


class _Idling:
    """When a member goes quiet and when it looks again.

    aiokafka fetches continuously, each fetch held by the broker for up to ``fetch_max_wait_ms``
    (Tansu holds an empty fetch for about half of it even when data arrives, INFRA.md, so that
    wait cannot simply grow). An idle hub therefore sent three fetches a second per partition
    owner, which was most of its idle CPU and the broker's. Instead, a member that read nothing
    for :attr:`quiet_after` seconds pauses its partitions (no fetches at all) and looks again
    every ``look_every`` seconds, or at once when ``wake`` says the log was written to (by this
    process, or by another one that announced it through PostgreSQL).
    A wake-up keeps the member fetching for another :attr:`quiet_after`, so what was written
    before the wake-up is always fetched by a request sent after it.

    Two rules keep this true on a starved machine, where one fetch or one batch may take longer
    than the windows above: the quiet time counts from the poll after the last records (not
    from their arrival, so a slow batch does not make the member idle at once), and a timed
    look lasts until every partition has had a fetch answered since the look began (at most
    :attr:`quiet_after`), not merely :attr:`look_for`.
    """

    def __init__(self, settings: KafkaSettings, wake: asyncio.Event | None) -> None:
        self.quiet_after = quiet_after_s(settings)
        self.look_every = settings.idle_poll_ms / 1000
        # one fetch held to its limit, and its answer
        self.look_for = max(0.05, 3 * settings.fetch_max_wait_ms / 1000)
        self.wake = wake or asyncio.Event()
        self.last_data = time.monotonic()
        self.paused = False
        self.next_look = 0.0
        self.never = False  # stop_idling: the caller stops or drains
        self.fed = False  # the last poll returned records
        self.look_began: float | None = None  # wall clock (aiokafka's fetch times), during a look

    def keep_fetching(self) -> None:
        self.paused = False
        self.look_began = None
        self.last_data = time.monotonic()

    def quiet(self) -> bool:
        return time.monotonic() - self.last_data > self.quiet_after

    async def wait(self) -> bool:
        """Wait for a wake-up or the next look; True when it is time to fetch (woken: the
        wake-up is used up here, and only here)."""
        remaining = self.next_look - time.monotonic()
        if not self.wake.is_set() and remaining > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), remaining)
        if self.wake.is_set():
            self.wake.clear()
            self.keep_fetching()
            return True
        return time.monotonic() >= self.next_look


class KafkaLogConsumer:
    """A member of ``settings.consumer_group`` reading ``settings.topic``; idle, it stops
    fetching (:class:`_Idling`) until ``wake`` is set or ``settings.idle_poll_ms`` passed, and
    meanwhile :meth:`poll` does not return (no timer runs in the process while it idles)."""

    def __init__(
        self,
        bootstrap: str,
        settings: KafkaSettings,
        *,
        group_id: str | None = None,
        max_record_bytes: int | None = None,
        wake: LogWritten | None = None,
        members: MemberRegistry | None = None,
    ):
        self._max_record_bytes = max_record_bytes
        self._wake = wake
        self._idling = _Idling(settings, wake.subscribe() if wake is not None else None)
        # A client id of its own, so the broker's member id (the client id and a suffix) names
        # this consumer's record in ``members``.
        client_id = f"koppelhub-projector-{uuid.uuid4().hex[:12]}"
        group = group_id or settings.consumer_group
        self._membership = Membership(members, client_id, group, settings.topic, wake=self._idling.wake)
        # caught_up(since): the first answer of each partition after ``since`` (_answered_after)
        self._first_answers: tuple[float | None, dict[TopicPartition, int]] = (None, {})
        self._rewound_at = 0.0  # the last look for a lost log while records flowed (monotonic)
        self._consumer: AIOKafkaConsumer = make_consumer(
            bootstrap, settings, group_id=group, listener=self._membership, client_id=client_id
        )

    @property
    def client_id(self) -> str:
        """This consumer's Kafka client id, unique to it: the start of its member id."""
        return self._membership.client_id

    @property
    def fetching(self) -> bool:
        """False while idle: the partitions are paused and no fetch is sent (:class:`_Idling`)."""
        return not self._idling.paused

    @property
    def assigned(self) -> bool:
        """Whether the group has given this member its partitions yet (perhaps none)."""
        return self._membership.assigned

    async def start(self) -> None:
        try:
            await self._consumer.start()
        except KafkaError as e:
            raise RetriableError(f"cannot join the consumer group: {e}") from e

    async def stop(self) -> None:
        if self._wake is not None:
            self._wake.unsubscribe(self._idling.wake)
        try:
            await self._consumer.stop()
        finally:
            await self._membership.forget()  # after the leave: a revoke during stop records ()

    async def poll(self, *, max_records: int, timeout_s: float) -> list[LogRecord]:
        idling = self._idling
        looking = False
        if idling.fed:  # quiet counts from now, not from while the last records were applied
            idling.keep_fetching()
            idling.fed = False
        if idling.paused:
            if idling.look_began is not None:
                looking = True  # a look whose fetches were not all answered yet goes on
            elif self._consumer.assignment() - self._consumer.paused():
                idling.keep_fetching()  # a rebalance brought partitions that are not paused
            elif not await idling.wait():
                return []
            else:
                looking = idling.paused  # a timed look, not a wake-up: one fetch, then idle again
                if looking:
                    idling.look_began = time.time()
            self._consumer.resume(*self._consumer.paused())
        try:
            batch = await self._consumer.getmany(
                timeout_ms=int((idling.look_for if looking else timeout_s) * 1000), max_records=max_records
            )
        except KafkaError as e:
            raise RetriableError(f"cannot read the log: {e}") from e
        if batch:
            idling.keep_fetching()
            idling.fed = True
            self._membership.handed({tp.partition: rs[-1].offset + 1 for tp, rs in batch.items() if rs})
            if time.monotonic() - self._rewound_at >= REWIND_LOOK_S:
                self._rewound_at = time.monotonic()
                await self._rewind_lost_logs(skip=batch.keys())
        else:
            await self._rewind_lost_logs()
        if not batch and not idling.never and (looking or idling.quiet()) and not self._look_unanswered():
            self._consumer.pause(*self._consumer.assignment())
            idling.paused, idling.look_began = True, None
            idling.next_look = time.monotonic() + idling.look_every
        limit = self._max_record_bytes
        return [  # aiokafka hands the headers over as a tuple already
            decode(tp.topic, tp.partition, r.offset, r.key, r.value, r.headers, limit, r.timestamp)
            for tp, records in batch.items()
            for r in records
        ]

    async def _rewind_lost_logs(self, skip: Collection[TopicPartition] = ()) -> None:
        """Read a partition from its start when its end lies below this member's position: the
        broker lost the log (it keeps it in memory and was started again), and the member kept
        its position, or a position of the old log was committed. Kafka answers such a fetch
        "out of range" and aiokafka then starts from the earliest offset; Tansu answers nothing,
        and the member would skip every record below its old position. The dedupe skips what
        was applied before. ``skip``: partitions that just returned records (they are fine);
        the others are looked at while records flow on those too, not only once none do."""
        for tp in self._consumer.assignment() - set(skip):
            # A rebalance during an earlier partition's await may have taken this one: then
            # aiokafka's highwater asserts and its seek raises; the next look sees the new set.
            if tp not in self._consumer.assignment():
                continue
            end = self._consumer.highwater(tp)
            if end is None:
                continue
            try:
                async with asyncio.timeout(POSITION_S):
                    position = await self._consumer.position(tp)
                if position > end:
                    log.warning("log_lost_read_again", partition=tp.partition, position=position, end=end)
                    await self._consumer.seek_to_beginning(tp)
            except (TimeoutError, KafkaError):
                continue  # not assigned any more, or the coordinator erred: the next look tries again

    def _look_unanswered(self) -> bool:
        """During a timed look: whether a partition has had no fetch answered since the look
        began (a busy machine; at most ``quiet_after`` long)."""
        began = self._idling.look_began
        if began is None or time.time() - began > self._idling.quiet_after:
            return False
        for tp in self._consumer.assignment():
            answered = self._consumer.last_poll_timestamp(tp)
            if answered is None or answered < began * 1000:
                return True
        return False

    def stop_idling(self) -> None:
        self._idling.never = True
        self._idling.wake.set()

    async def commit(self, positions: Mapping[int, int]) -> bool:
        """Commit ``positions``, but none past the records handed over in the current assignment,
        and give a commit up when a rebalance begins meanwhile (aiokafka's commit retries until a
        coordinator answers, and would send its old positions once the member has rejoined):
        see :class:`hub.adapters.kafka_membership.Membership`. What is not committed is read
        again by whoever owns the partition, and the dedupe skips it.

        A second line of defence: a commit request already sent is not called back (aiokafka
        shields it), so where the hub can, it stops its members before a broker that lost its
        log is back (README "Outages")."""
        if not positions:
            return True
        if beyond := self._membership.beyond(positions):
            log.info(
                "offset_commit_skipped",
                positions=beyond,
                reason="read before the group's last rebalance (or in a log the broker lost): "
                "read again by the partition's owner",
            )
            positions = {p: after for p, after in positions.items() if p not in beyond}
        ended = self._membership.ended
        if not positions or ended.is_set():
            return False
        topic = self._topic()
        committing = asyncio.ensure_future(
            self._consumer.commit({TopicPartition(topic, p): o for p, o in positions.items()})
        )
        rebalancing = asyncio.ensure_future(ended.wait())
        try:
            await asyncio.wait({committing, rebalancing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            rebalancing.cancel()
            if not committing.done():
                committing.cancel()  # a rebalance began, or the member left
        if committing.cancelled():
            log.warning("offset_commit_failed", error="a rebalance began during the commit")
            return False
        try:
            committing.result()
        except (CommitFailedError, KafkaError) as e:
            # A rebalance took the partitions away; the new owner replays and dedupe skips.
            log.warning("offset_commit_failed", error=str(e))
            return False
        return not beyond

    def _topic(self) -> str:
        """The one topic this member subscribed to."""
        topic: str = next(iter(self._consumer.subscription()))
        return topic

    def wake(self) -> None:
        self._idling.wake.set()

    async def seek(self, positions: Mapping[int, int]) -> None:
        if not positions:
            return
        topic = self._topic()
        assignment = self._consumer.assignment()
        for p, offset in positions.items():
            tp = TopicPartition(topic, p)
            if tp in assignment:  # aiokafka drops what it fetched for ``tp`` before the seek
                self._consumer.seek(tp, offset)
        if self._idling.paused:  # read again now, not at the next look
            self._idling.keep_fetching()
            self._consumer.resume(*self._consumer.paused())

    async def caught_up(self, since: float | None = None) -> bool:
        if self._idling.paused:  # the high-water marks are as old as the last fetch: fetch again
            self._idling.keep_fetching()
            self._consumer.resume(*self._consumer.paused())
            return False
        assignment = self._consumer.assignment()
        if not assignment:
            return self._membership.assigned
        # every partition's first answer after ``since`` is noted now, not one partition a call
        if since is not None and not all([self._answered_after(tp, since) for tp in assignment]):
            return False
        for tp in assignment:
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                return False
            try:
                # A position being reset waits for the broker, up to the request timeout (40 s)
                # and again: against a broker that is away that could hold a drain past its bound.
                async with asyncio.timeout(POSITION_S):
                    position = await self._consumer.position(tp)
            except (TimeoutError, KafkaError):  # being reset, or no longer ours: not known
                return False
            if position < highwater:
                return False
        return True

    def _answered_after(self, tp: TopicPartition, since: float) -> bool:
        """Whether the high-water mark of ``tp`` comes from a fetch sent after ``since``. A fetch
        answered after then may have been sent before (its answer then predates a publish
        acknowledged meanwhile), but aiokafka keeps one fetch per broker in flight: one answered
        later than the first answer after ``since`` was sent after that answer."""
        answered: int | None = self._consumer.last_poll_timestamp(tp)  # ms, when it was processed
        if answered is None or answered < since * 1000:
            return False
        if self._first_answers[0] != since:
            self._first_answers = (since, {})
        return answered > self._first_answers[1].setdefault(tp, answered)
